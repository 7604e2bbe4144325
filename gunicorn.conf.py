"""gunicorn settings for pieces_service (used by `make run`; see the README for deployment)."""
import multiprocessing
import os

bind = f"127.0.0.1:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", max(2, multiprocessing.cpu_count())))
worker_class = "sync"
timeout = 30
graceful_timeout = 20
keepalive = 5
