"""One logging configuration for the app, uvicorn and SQLAlchemy.

structlog renders every record — our own events and the stdlib records of
libraries — so the output is uniformly JSON lines or console lines.
"""

from __future__ import annotations

import logging
import logging.config
from typing import Any

import structlog
import structlog.tracebacks
from asgi_correlation_id import correlation_id
from structlog.types import EventDict, Processor

from app.core.config import Settings


def _add_request_id(_logger: Any, _method: str, event_dict: EventDict) -> EventDict:
    request_id = correlation_id.get()
    if request_id is not None:
        event_dict.setdefault("request_id", request_id)
    return event_dict


def configure_logging(settings: Settings) -> None:
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        _add_request_id,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Processor
    # Tracebacks never carry local variables: a frame's locals can hold a
    # password or a token.
    if settings.effective_log_format == "json":
        renderer = structlog.processors.JSONRenderer()
        shared.append(
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            )
        )
    else:
        renderer = structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)

    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {
                "structlog": {
                    "()": structlog.stdlib.ProcessorFormatter,
                    "foreign_pre_chain": shared,
                    "processors": [
                        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                        renderer,
                    ],
                }
            },
            "handlers": {"default": {"class": "logging.StreamHandler", "formatter": "structlog"}},
            "root": {"handlers": ["default"], "level": settings.log_level},
            "loggers": {
                # Routed to the root handler: one format for everything.
                "uvicorn": {"handlers": [], "propagate": True},
                "uvicorn.error": {"handlers": [], "propagate": True},
                # The access line is written by our own middleware.
                "uvicorn.access": {"handlers": [], "propagate": False},
                "sqlalchemy": {"level": "WARNING"},
            },
        }
    )
