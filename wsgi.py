"""WSGI entry point: `gunicorn wsgi:app`."""
from pieces_service import create_app

app = create_app()
