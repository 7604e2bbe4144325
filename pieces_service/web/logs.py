"""Structured logs: every line on stdout is one JSON object, gunicorn's own lines included.

gunicorn applies `logging_config(level)` (see gunicorn.conf.py) in the master before it forks,
so the workers and the application inherit it. `RequestIdFilter` stamps each record logged
while a request is being served with that request's id, trace id and span id (W3C Trace
Context, `web/tracing.py`). Nothing here logs tokens, headers or
bodies: callers pass only the fields they mean to show.
"""
from __future__ import annotations

import json
import logging
import os
from datetime import datetime, timezone

import orjson

from flask import g, has_request_context
from gunicorn import glogging

ACCESS_LOGGER = "pieces_service.access"

# Attributes every LogRecord has; anything else a caller passed in `extra=` is shown as a field.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "request_id", "trace_id", "span_id", "taskName",
}


class RequestIdFilter(logging.Filter):
    """Set `record.request_id`, `record.trace_id` and `record.span_id` to the current
    request's (None outside a request), unless the caller passed them (`extra=`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            in_request = has_request_context()
            record.request_id = g.get("request_id") if in_request else None
            trace = g.get("trace") if in_request else None
            record.trace_id = trace.trace_id if trace else None
            record.span_id = trace.span_id if trace else None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, pid, message, request_id, trace_id,
    span_id, the record's `extra=` fields, and the exception (type and traceback) if there
    is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, timezone.utc)
            .isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process or os.getpid(),
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
            "trace_id": getattr(record, "trace_id", None),
            "span_id": getattr(record, "span_id", None),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exc_type"] = record.exc_info[0].__name__ if record.exc_info[0] else None
            entry["exc_info"] = self.formatException(record.exc_info)
        elif record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        try:  # orjson: a third of json.dumps's cost on every request's line (issue 14)
            return orjson.dumps(entry, default=str).decode()
        except TypeError:  # what orjson refuses (an int beyond 64 bits, a non-str key)
            return json.dumps(entry, default=str, ensure_ascii=False)


def logging_config(level: str = "INFO") -> dict:
    """A `logging.config.dictConfig` mapping: JSON lines on stdout for the root logger and
    gunicorn's error log; gunicorn's access log off (the application writes its own line)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "formatter": "json",
                "filters": ["request_id"],
            },
        },
        "root": {"level": level, "handlers": ["stdout"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": ["stdout"], "propagate": False},
            "gunicorn.access": {"level": "CRITICAL", "handlers": [], "propagate": False},
            # The request lines are the service's access log: always on, whatever the level.
            ACCESS_LOGGER: {"level": "INFO", "propagate": True},
        },
    }


class NoAccessLogger(glogging.Logger):
    """gunicorn's logger without its access log (the application logs each request)."""

    def access(self, resp, req, environ, request_time):
        return None
