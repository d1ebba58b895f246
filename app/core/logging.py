"""One logging configuration for the app, uvicorn and SQLAlchemy.

structlog renders every record — our own events and the stdlib records of
libraries — so the output is uniformly JSON lines or console lines. Fields
of the request being served (request_id, trace_id, user_id, route, …) come
from context variables, bound once per request by the observing middleware.
"""

from __future__ import annotations

import logging
import logging.config
import sys
from typing import Any

import structlog
import structlog.tracebacks
from asgi_correlation_id import correlation_id
from structlog.types import EventDict, Processor

from app.core import request_scope
from app.core.config import Settings
from app.core.redaction import Redactor, configured_secrets


def _add_request_id(_logger: Any, _method: str, event_dict: EventDict) -> EventDict:
    request_id = correlation_id.get()
    if request_id is not None:
        event_dict.setdefault("request_id", request_id)
    return event_dict


def _add_route(_logger: Any, _method: str, event_dict: EventDict) -> EventDict:
    scope = request_scope.current()
    if scope is not None and "route" not in event_dict:
        route = request_scope.route_template(scope)
        if route is not None:
            event_dict["route"] = route
    return event_dict


# Nothing here depends on settings: structlog caches loggers on first use, so
# this chain is fixed for the life of the process. What depends on settings
# (format, secrets) sits in the formatter, rebuilt by every configuration.
_CONTEXT: list[Processor] = [
    structlog.contextvars.merge_contextvars,
    _add_request_id,
    _add_route,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def configure_logging(settings: Settings) -> None:
    # Tracebacks never carry local variables: a frame's locals can hold a
    # password or a token. They are rendered before redaction, so an exception
    # message holding a secret is scrubbed too.
    exceptions: Processor
    renderer: Processor
    if settings.effective_log_format == "json":
        exceptions = structlog.processors.ExceptionRenderer(
            structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
        )
        renderer = structlog.processors.JSONRenderer()
    else:
        exceptions = structlog.processors.format_exc_info
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())

    structlog.configure(
        processors=[
            # Drops a disabled level before any other work.
            structlog.stdlib.filter_by_level,
            *_CONTEXT,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
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
                    "foreign_pre_chain": _CONTEXT,
                    "processors": [
                        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                        exceptions,
                        Redactor(configured_secrets(settings)),
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
                # At DEBUG both write each statement's parameters: password
                # hashes, token digests. (DB_ECHO logs statements without them.)
                "sqlalchemy": {"level": "WARNING"},
                "aiosqlite": {"level": "WARNING"},
                # Start-up chatter of alembic's autogenerate plugins.
                "alembic.runtime.plugins": {"level": "WARNING"},
            },
        }
    )
    # Python warnings (SQLAlchemy's SAWarning among them) become log records
    # in the same format instead of bare text on stderr.
    logging.captureWarnings(True)
    _skip_unused_record_fields()


def _skip_unused_record_fields() -> None:
    """Stop stdlib logging from finding, per record, what no line here prints.

    The caller's file and line (a walk up the stack), the thread, process
    and multiprocessing names: each log line is rendered from structlog's
    event dict alone. These switches are the "Optimization" the logging
    HOWTO documents; they cost an access line about a sixth of its time.
    """
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
