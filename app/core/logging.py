"""One logging configuration for the app, uvicorn and SQLAlchemy.

One structlog processor chain renders every line — our own events and the
stdlib records of libraries — so the output is uniformly JSON lines or
console lines, one write and one flush each, on stderr. Our own events take
structlog's native path: the chain runs in the caller and the rendered line
goes straight to the output, with no `LogRecord` and no handler in between.
Library records (uvicorn, SQLAlchemy, warnings) reach a stdlib handler whose
formatter runs the same chain. Fields of the request being served
(request_id, trace_id, user_id, route, …) come from context variables,
bound once per request by the observing middleware.
"""

from __future__ import annotations

import json
import logging
import logging.config
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any, TextIO

import orjson
import structlog
import structlog.tracebacks
from asgi_correlation_id import correlation_id
from structlog.contextvars import _CONTEXT_VARS as _STRUCTLOG_VARS
from structlog.contextvars import STRUCTLOG_KEY_PREFIX
from structlog.types import EventDict, Processor

from app.core import request_scope
from app.core.config import Settings
from app.core.redaction import Redactor, configured_secrets


class LogOutput:
    """Where every rendered line goes: stderr, and any stream added to read them too.

    A lock keeps lines whole when threads log at once; each line is flushed
    as it is written, so a crash loses none.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stderr: TextIO = sys.stderr
        self._extra: tuple[TextIO, ...] = ()

    def use_stderr(self) -> None:
        """The process's stderr as it is now: each configuration picks it up anew."""
        self._stderr = sys.stderr

    def add(self, stream: TextIO) -> None:
        """Write every line to `stream` as well (tests read lines as rendered this way)."""
        with self._lock:
            self._extra = (*self._extra, stream)

    def remove(self, stream: TextIO) -> None:
        with self._lock:
            self._extra = tuple(s for s in self._extra if s is not stream)

    def write(self, line: str) -> None:
        text = line + "\n"
        with self._lock:
            if self._stderr.closed:
                # Replaced and closed since it was picked up (a test's captured
                # stderr, with a library's thread still logging): the process's
                # own stderr takes the line instead.
                self._stderr = sys.__stderr__ or self._stderr
            self._stderr.write(text)
            self._stderr.flush()
            for stream in self._extra:
                stream.write(text)
                stream.flush()


output = LogOutput()


class _Line:
    """What structlog's native path logs to: only a name (add_logger_name's `logger`).

    The rendered line goes to `output` from the bound logger itself.
    """

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


def _line_factory(*args: Any) -> _Line:
    # A nameless get_logger() is named after its caller's module, as stdlib's factory does.
    return _Line(structlog.stdlib.LoggerFactory(ignore_frame_names=[__name__])(*args).name)


class _BoundLogger(structlog.BoundLoggerBase):
    """structlog's filtering logger, with the level of the latest configuration.

    Loggers are cached on first use, so the level cannot be baked into the
    class a logger is made of: each configuration copies the methods of
    structlog's filtering class for the level onto this one (a disabled
    level is a bare `return None`), and cached loggers follow.
    """

    @classmethod
    def set_level(cls, level: str) -> None:
        filtering = structlog.make_filtering_bound_logger(level)
        for name, method in vars(filtering).items():
            if not name.startswith("__"):
                setattr(cls, name, method)
        # The enabled levels the code calls, each a step shorter than structlog's.
        threshold = logging.getLevelName(level)
        for number, name in _LEVELS.items():
            if number >= threshold:
                setattr(cls, name, _level_method(name))
        for alias, name in (("warn", "warning"), ("fatal", "critical"), ("msg", "info")):
            setattr(cls, alias, getattr(cls, name))

    def _proxy_to_logger(self, method_name: str, event: str | None = None, **event_kw: Any) -> Any:
        self._emit(method_name, event, event_kw)

    def _emit(self, method_name: str, event: str | None, event_kw: dict[str, Any]) -> None:
        # structlog's own steps (BoundLoggerBase._process_event and the call
        # of the wrapped logger), minus the checks of what the chain may
        # return: this chain ends in a str.
        try:
            event_dict: Any = {**self._context, **event_kw} if self._context else event_kw
            if event is not None:
                event_dict["event"] = event
            for processor in self._processors:
                event_dict = processor(self._logger, method_name, event_dict)
            output.write(event_dict)
        except structlog.DropEvent:
            pass
        except Exception:
            # As a stdlib handler does: a line that cannot be written never
            # fails the code that logged it.
            _report_failure()


_LEVELS = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warning",
    logging.ERROR: "error",
    logging.CRITICAL: "critical",
}


def _level_method(name: str) -> Any:
    def method(self: _BoundLogger, event: str, *args: Any, **kw: Any) -> None:
        if args:
            # %-interpolation, as structlog's filtering logger does it.
            mapping = len(args) == 1 and isinstance(args[0], Mapping) and args[0]
            event = event % (args[0] if mapping else args)
        self._emit(name, event, kw)

    method.__name__ = name
    return method


def _report_failure() -> None:
    if not logging.raiseExceptions:
        return
    try:
        sys.stderr.write("--- Logging error ---\n")
        traceback.print_exc(file=sys.stderr)
    except OSError:  # stderr itself is gone
        pass


class _LineHandler(logging.Handler):
    """Library records: rendered by the formatter (the same chain), written to the same output."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            output.write(self.format(record))
        except Exception:
            self.handleError(record)


def _line_handler() -> logging.Handler:
    handler = _LineHandler()
    # The chain itself, not a copy (dictConfig would copy a list passed
    # through it); no pre-chain: the chain adds a library record's context too.
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(processors=_CHAIN))
    return handler


def _add_context(logger: Any, method_name: str, event_dict: EventDict) -> EventDict:
    """What every line carries besides its own fields, in this order.

    One processor instead of structlog's merge_contextvars, add_log_level,
    add_logger_name, TimeStamper and remove_processors_meta plus two of
    ours: the same fields with the same values, one call a line, not seven.
    """
    # The context variables bound for this request or job. structlog keeps
    # one variable per key it has ever bound: reading those few is cheaper
    # than walking every variable of the context, as merge_contextvars does.
    global _bound
    known, pairs = _bound
    if known != len(_STRUCTLOG_VARS):
        pairs = tuple((name[_PREFIX_LENGTH:], var) for name, var in tuple(_STRUCTLOG_VARS.items()))
        _bound = (len(pairs), pairs)
    for key, var in pairs:
        value = var.get()
        if value is not Ellipsis:
            event_dict.setdefault(key, value)
    request_id = correlation_id.get()
    if request_id is not None:
        event_dict.setdefault("request_id", request_id)
    if "route" not in event_dict:
        scope = request_scope.current()
        route = None if scope is None else request_scope.route_template(scope)
        if route is not None:
            event_dict["route"] = route
    event_dict["level"] = _LEVEL_NAMES.get(method_name, method_name)
    record = event_dict.get("_record")
    if record is None:
        event_dict["logger"] = logger.name
    else:
        # A library record: ProcessorFormatter put the record (and where it
        # came from) in the event dict; only its name is printed.
        event_dict["logger"] = record.name
        del event_dict["_record"]
        event_dict.pop("_from_structlog", None)
    event_dict["timestamp"] = _utc_timestamp()
    return event_dict


_PREFIX_LENGTH = len(STRUCTLOG_KEY_PREFIX)
# (how many variables structlog had, each one's key and variable), kept
# until structlog makes another.
_bound: tuple[int, tuple[tuple[str, ContextVar[Any]], ...]] = (0, ())
# As structlog's add_log_level names them.
_LEVEL_NAMES = {"warn": "warning", "exception": "error"}
# The wall clock's current second, formatted once for all its lines.
_second: tuple[int, str] = (-1, "")


def _utc_timestamp() -> str:
    """Now in UTC as structlog's TimeStamper(fmt="iso", utc=True) writes it.

    That is datetime.now(timezone.utc).isoformat() with "Z" for "+00:00":
    microseconds (truncated, none when zero), no datetime built per line.
    """
    global _second
    seconds, micros = divmod(time.time_ns() // 1000, 1_000_000)
    cached, text = _second
    if seconds != cached:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        _second = (seconds, text)
    return f"{text}.{micros:06d}Z" if micros else f"{text}Z"


def _json_fallback(value: Any) -> Any:
    # What structlog's JSONRenderer does with a value JSON has no type for.
    try:
        return value.__structlog__()
    except AttributeError:
        return repr(value)


# orjson renders a line in a fifth of the time the standard library's
# encoder takes (about 0.6 against 3 µs for an access line), and every
# request writes one. Datetimes and UUIDs it writes as ISO strings itself;
# other types JSON lacks go through the fallback. A line it refuses (an
# integer past 64 bits) the standard library renders instead.
_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS


def _render_json(_logger: Any, _method: str, event_dict: EventDict) -> str:
    try:
        return orjson.dumps(event_dict, default=_json_fallback, option=_ORJSON_OPTIONS).decode()
    except TypeError:
        return json.dumps(event_dict, default=_json_fallback)


# The one chain, for both kinds of line. Loggers cached on first use keep a
# reference to this list: each configuration replaces its contents in place.
_CHAIN: list[Processor] = []


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
        renderer = _render_json
    else:
        exceptions = structlog.processors.format_exc_info
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())

    _CHAIN[:] = [
        _add_context,
        exceptions,
        Redactor(configured_secrets(settings)),
        renderer,
    ]
    _BoundLogger.set_level(settings.log_level)
    output.use_stderr()
    structlog.configure(
        processors=_CHAIN,
        logger_factory=_line_factory,
        wrapper_class=_BoundLogger,
        cache_logger_on_first_use=True,
    )
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {"default": {"()": _line_handler}},
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
    HOWTO documents; they cost a library record about a sixth of its time.
    """
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
