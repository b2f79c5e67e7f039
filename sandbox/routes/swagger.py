"""Spark's OpenAPI document, served unauthenticated where Spark serves it."""

from __future__ import annotations

from importlib import resources

from flask import Blueprint, Response

from sandbox.paths import API_PREFIX
from sandbox.responses import JSON_CONTENT_TYPE, empty_response

swagger = Blueprint("swagger", __name__, url_prefix=API_PREFIX)


@swagger.get("/swagger/Partner/swagger.json")
def swagger_document() -> Response:
    spec = resources.files("sandbox").joinpath("openapi.json")
    if not spec.is_file():
        return empty_response(404)
    return Response(spec.read_bytes(), status=200, content_type=JSON_CONTENT_TYPE)
