"""Request parsing the sandbox's routes share: JSON bodies and `page`/`pageSize`."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, NoReturn

from flask import request

from sandbox.responses import (
    JSONObject,
    Reject,
    bad_string,
    control_error,
    empty_response,
    reject_problem,
)

MAX_PAGE_SIZE = 1000
# Spark does not document its default page size.
DEFAULT_PAGE_SIZE = 100


def read_json(*, required: bool, bad: Callable[[str], NoReturn]) -> Any:
    """The JSON body; `bad(message)` when it is missing (and required) or malformed."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        if required:
            bad("A non-empty request body is required.")
        return None
    if not request.is_json:
        raise Reject(empty_response(415))
    try:
        return json.loads(raw)
    except ValueError:
        bad("The request body is not valid JSON.")


def paging(*, as_problem: bool = True) -> tuple[int, int]:
    """`page` (1-based) and `pageSize` query parameters.

    Bad values are a 400 problem, or a 400 string for operations whose spec says so.
    """

    def bad(name: str, message: str) -> NoReturn:
        if as_problem:
            reject_problem(name, message)
        bad_string(message)

    def int_arg(name: str, default: int) -> int:
        raw = request.args.get(name)
        if raw is None or raw == "":
            return default
        try:
            return int(raw)
        except ValueError:
            bad(name, f"The value '{raw}' is not valid for {name}.")

    page = int_arg("page", 1)
    page_size = int_arg("pageSize", DEFAULT_PAGE_SIZE)
    if page < 1:
        bad("page", "page must be 1 or more.")
    if page_size < 1:
        bad("pageSize", "pageSize must be 1 or more.")
    if page_size > MAX_PAGE_SIZE:
        bad("pageSize", f"Maximum pageSize is {MAX_PAGE_SIZE}.")
    return page, page_size


def not_number(value: Any) -> bool:
    return isinstance(value, bool) or not isinstance(value, int | float)


# The control surface's own, simpler conventions


def control_body() -> JSONObject:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise Reject(control_error("the body must be a JSON object"))
    return body
