"""The worker's heartbeat, for requests that legitimately run longer than gunicorn's timeout.

gunicorn's arbiter kills a sync worker that has not reported for `timeout` seconds
(gunicorn.conf.py: 30). A worker reports between requests only, so a long streamed export
would be killed mid-body. gunicorn.conf.py's `post_worker_init` hands the worker's own
`notify` to `set_notifier`; the export calls `beat()` between batches. Outside gunicorn
(tests, the development server) nothing is set and `beat()` does nothing.
"""
from __future__ import annotations

from typing import Callable

_notify: Callable[[], None] | None = None


def set_notifier(notify: Callable[[], None] | None) -> None:
    """Use `notify` (gunicorn's `worker.notify`) for every `beat()` of this process."""
    global _notify
    _notify = notify


def beat() -> None:
    """Tell the arbiter this worker is alive (a no-op when no notifier is set)."""
    if _notify is not None:
        _notify()
