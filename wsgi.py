"""WSGI entry point: `gunicorn wsgi:app` (gunicorn.conf.py supplies the settings)."""
from pieces_service import config_from_env_or_exit, create_app

app = create_app(config_from_env_or_exit())
