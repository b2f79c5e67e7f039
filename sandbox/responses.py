"""Response shapes the sandbox's routes share.

Spark answers errors in three shapes, and each operation in the spec says which: an
`application/problem+json` HttpValidationProblemDetails, a bare JSON string, or no body.
Helpers deep inside a view raise `Reject` with a finished response; the app turns it back
into that response.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, NoReturn

from flask import Response

JSONObject = dict[str, Any]

JSON_CONTENT_TYPE = "application/json; charset=utf-8"
PROBLEM_CONTENT_TYPE = "application/problem+json; charset=utf-8"
VALIDATION_TITLE = "One or more validation errors occurred."


class Reject(Exception):
    """Carries a finished response out of a view's helpers."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


# Responses


def json_response(status: int, body: Any, content_type: str = JSON_CONTENT_TYPE) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":")), status=status, content_type=content_type
    )


def empty_response(status: int) -> Response:
    response = Response(b"", status=status)
    # No body, so no media type (Flask would otherwise claim text/html).
    del response.headers["Content-Type"]
    return response


def problem_response(title: str, errors: Mapping[str, list[str]]) -> Response:
    """ASP.NET's HttpValidationProblemDetails for a 400."""
    body = {
        "type": "https://tools.ietf.org/html/rfc9110#section-15.5.1",
        "title": title,
        "status": 400,
        "errors": dict(errors),
    }
    return json_response(400, body, PROBLEM_CONTENT_TYPE)


def string_response(status: int, message: str) -> Response:
    """The bare JSON string body many Spark 400s carry."""
    return json_response(status, message)


def reject_problem(field_name: str, message: str) -> NoReturn:
    raise Reject(problem_response(VALIDATION_TITLE, {field_name: [message]}))


def bad_string(message: str) -> NoReturn:
    raise Reject(string_response(400, message))


def bad_problem(message: str) -> NoReturn:
    reject_problem("body", message)


def pagination(total: int, page: int, page_size: int) -> JSONObject:
    """ApiPagination for 1-based pages."""
    total_pages = math.ceil(total / page_size)
    return {
        "totalRecords": total,
        "pageSize": page_size,
        "currentPage": page,
        "totalPages": total_pages,
        "nextPage": page + 1 if page < total_pages else None,
        "previousPage": page - 1 if page > 1 else None,
    }


def control_error(message: str) -> Response:
    return json_response(400, {"error": message})
