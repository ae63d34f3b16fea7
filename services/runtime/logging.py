"""Structured logs (structlog): one JSON object per line on stderr, carrying the request id
of the call being served so a request can be followed across services.

Never log request or response bodies: even ciphertext and key material stay out of logs."""

from __future__ import annotations

import logging
import sys

import structlog

from services.runtime import context


def _add_request_id(_logger, _name, event_dict):
    rid = context.request_id.get()
    if rid and "request_id" not in event_dict:
        event_dict["request_id"] = rid
    return event_dict


def configure(level: str = "INFO", fmt: str = "json", stream=None,
              fields: dict[str, object] | None = None) -> None:
    """`fields` go on every line (a distributed process adds its service and pid, since
    many processes share one terminal or log collector)."""
    static = dict(fields or {})

    def add_fields(_logger, _name, event_dict):
        for k, v in static.items():
            event_dict.setdefault(k, v)
        return event_dict

    renderer = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            _add_request_id,
            add_fields,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(file=stream or sys.stderr),
        cache_logger_on_first_use=False,
    )


def get(name: str):
    return structlog.get_logger(name)
