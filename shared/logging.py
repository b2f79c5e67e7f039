"""Log lines: one structured event per line, from structlog and from plain `logging` alike.

`configure_logging(process)` is called once at the start of every process (ingress, worker,
beat, CLI). It puts one handler on the root logger whose `structlog.stdlib.ProcessorFormatter`
renders every record, so the many `logging.getLogger(__name__)` calls (ours, Celery's,
gunicorn's) come out in the same shape as structlog's own: with `LOG_FORMAT=json` (the
default) one JSON object per line, with `LOG_FORMAT=console` (`make run`) a readable line.

Every line carries what is bound in the context where it applies: `task_id` and `task_name`
(bound for each Celery task), `event_id` and `notification_id` (bound by the inbox),
`report_id` (bound by the report sender). Alerts carry `alert=<name>` as a field, so they are
found with `jq 'select(.alert)'` as well as by the word ALERT in the message.

Nothing secret is ever logged by our code: signatures, tokens, secrets and webhook bodies stay
out of messages (tests/test_logging.py drives the ingress and a worker with known ones and
greps their output). As a second guard, fields with such names are dropped from every event.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from shared.config import load_log_format

HANDLER_NAME = "spark-partner"

# Fields that must never reach a log line, whoever passes them.
SENSITIVE_FIELDS = frozenset(
    {
        "secret",
        "secrets",
        "webhook_secret",
        "token",
        "access_token",
        "authorization",
        "signature",
        "body",
        "raw",
        "raw_body",
        "body_b64",
        "password",
        "client_secret",
    }
)


def _add_process(process: str) -> Processor:
    def add(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
        event_dict.setdefault("process", process)
        return event_dict

    return add


# Fields a stdlib call may pass as `extra={...}` to have them on its line. Only these: Celery
# passes whole task contexts (arguments included) as `extra`, and those must stay out.
RECORD_FIELDS = ("alert", "event_id", "notification_id", "report_id", "task_id")


def _fields_from_record(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """`logger.error(..., extra={"alert": name})` from stdlib logging becomes `alert=name`."""
    record = event_dict.get("_record")
    for name in RECORD_FIELDS:
        value = getattr(record, name, None)
        if value is not None:
            event_dict[name] = value
    return event_dict


def _drop_sensitive(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    for name in SENSITIVE_FIELDS.intersection(event_dict):
        del event_dict[name]
    return event_dict


def _processors(process: str) -> list[Processor]:
    """What every event gets, whether it came from structlog or from stdlib logging."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        _fields_from_record,
        _add_process(process),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _drop_sensitive,
    ]


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is at the time of each record, so a CLI command run
    inside another program (click's test runner) never writes to a stream it has closed."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _: Any) -> None:
        return None


def configure_logging(
    process: str, *, level: int | str | None = logging.INFO, log_format: str | None = None
) -> None:
    """Send every log record of this process to stderr, one structured event per line.

    `log_format` defaults to `LOG_FORMAT` (json or console); `level` None leaves the root
    logger's level as it is. Safe to call again (Celery's pool children do): the handler
    this put on the root logger is replaced, and handlers others put there are kept.
    """
    chosen = log_format or load_log_format()
    renderer: Processor
    if chosen == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    else:
        renderer = structlog.processors.JSONRenderer(ensure_ascii=False)
    final: list[Processor] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    if chosen != "console":
        # JSON carries a traceback as one string field; the console renderer prints it as is.
        final.append(structlog.processors.format_exc_info)
    final.append(renderer)
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_processors(process), processors=final
    )
    handler = _StderrHandler()
    handler.setFormatter(formatter)
    handler.set_name(HANDLER_NAME)
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if h.get_name() != HANDLER_NAME] + [handler]
    if level is not None:
        root.setLevel(level)
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_processors(process),
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def alert(logger: logging.Logger, name: str, message: str, *args: object) -> None:
    """An ERROR line that operators alert on: `ALERT` in the message, `alert=name` as a field."""
    logger.error("ALERT: " + message, *args, extra={"alert": name})


def bind(**ids: Any) -> None:
    """Put ids (event_id, notification_id, report_id...) on every line logged from here on
    in this context; None values are left out."""
    structlog.contextvars.bind_contextvars(
        **{key: value for key, value in ids.items() if value is not None}
    )


def unbind(*names: str) -> None:
    structlog.contextvars.unbind_contextvars(*names)


@contextmanager
def bound(**ids: Any) -> Iterator[None]:
    """`bind` for the duration of a block, restoring what was bound before."""
    tokens = structlog.contextvars.bind_contextvars(
        **{key: value for key, value in ids.items() if value is not None}
    )
    try:
        yield
    finally:
        structlog.contextvars.reset_contextvars(**tokens)


def clear() -> None:
    structlog.contextvars.clear_contextvars()


def bound_ids() -> Mapping[str, Any]:
    return structlog.contextvars.get_contextvars()


__all__ = [
    "SENSITIVE_FIELDS",
    "alert",
    "bind",
    "bound",
    "bound_ids",
    "clear",
    "configure_logging",
    "unbind",
]
