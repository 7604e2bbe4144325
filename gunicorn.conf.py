"""gunicorn settings for pieces_service: `gunicorn -c gunicorn.conf.py wsgi:app` (gunicorn
reads ./gunicorn.conf.py by default). See docs/operations.md for deployment.

Every setting comes from pieces_service.config, validated here, before gunicorn starts: a bad
variable stops the start with one line on stderr and no traceback.
"""
import glob
import os
import sys
import tempfile

# Metrics must be shared by the workers, and prometheus_client picks its storage when it is
# first imported, so the directory is set before anything imports it.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="pieces-metrics-")

from pieces_service import config_from_env_or_exit  # noqa: E402
from pieces_service.web import worker as _worker  # noqa: E402
from pieces_service.web.logs import logging_config  # noqa: E402

_config = config_from_env_or_exit()

proc_name = "pieces_service"
wsgi_app = "wsgi:app"
# Loopback by default; behind a gateway in a container, override with
# GUNICORN_CMD_ARGS="--bind 0.0.0.0:8000".
bind = f"127.0.0.1:{_config.port}"
workers = _config.web_concurrency
# gunicorn's gthread worker, with the queue-time stamp and the send timeout of admission
# control (pieces_service/web/worker.py): a long or slow response holds one of a worker's
# PIECES_THREADS threads, never the whole process. Sizing: docs/operations.md.
worker_class = "pieces_service.web.worker.ThreadWorker"
threads = _config.threads
_worker.ThreadWorker.send_timeout_s = _config.send_timeout_s
SWITCH_INTERVAL_S = 0.001
# A request's SQL is cut at PIECES_STATEMENT_TIMEOUT_MS; a worker whose main loop is silent
# for this long is stuck (the gthread loop reports every second, whatever its threads do).
timeout = 30
# SIGTERM: stop accepting, finish in-flight requests for up to this long, then exit.
graceful_timeout = 25
keepalive = 5
# Recycle workers now and then (bounded memory growth), not all at once. Memory stays flat
# (make soak), so rarely: at 5000 the benchmark saw a restart every ~15 s per worker, each a
# p99 spike.
max_requests = 100000
max_requests_jitter = 10000
# Room for an 8 KiB bearer token in the Authorization header.
limit_request_field_size = 16384
# gunicorn >= 25 opens a control socket at one fixed per-user path, which two instances on one
# host (a test run beside `make run`) would fight over; we steer gunicorn with signals instead.
control_socket_disable = True
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"  # heartbeat file off a possibly slow or full disk

# The application writes one JSON line per request; gunicorn's own lines are JSON too.
accesslog = None
errorlog = "-"
loglevel = _config.log_level.lower()
logconfig_dict = logging_config(_config.log_level)
# With a logconfig set, gunicorn formats an access record for every request even though
# nothing prints it (a cost BENCHMARKS.md measures, lever 4); the app's own line replaces it.
logger_class = "pieces_service.web.logs.NoAccessLogger"


def on_starting(server):
    """Start from empty metrics: files left by an earlier run would be summed in."""
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(directory, exist_ok=True)
    for path in glob.glob(os.path.join(directory, "*.db")):
        os.remove(path)


def child_exit(server, worker):
    """Drop a dead worker's live gauges (its counters stay in the totals)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def post_worker_init(worker):
    """Let long requests (the streaming export) report to the arbiter between batches, so
    that `timeout` measures silence, not the length of a response (web/heartbeat.py)."""
    from pieces_service.web import heartbeat

    heartbeat.set_notifier(worker.notify)
    # A thread that wants the interpreter waits at most this long for a running one to give
    # it up (CPython's default is 5 ms): a short request beside a heavy one in the same
    # worker waits that long each time it comes back from the database
    # (docs/reliability.md, "Sharing the service").
    sys.setswitchinterval(SWITCH_INTERVAL_S)
