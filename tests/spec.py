"""Check HTTP traffic against Spark's OpenAPI document with openapi-core.

Used two ways: the sandbox's tests check that the sandbox answers as Spark is specified to,
and other suites check that OUR requests to Spark (as recorded by the sandbox, or built by
the client) are what Spark accepts.

The document as Spark publishes it cannot validate even its own examples: every payload
schema inherits `payloadType` through `allOf` from a base that has `additionalProperties:
false`, so under JSON Schema rules no payload is valid (the base rejects the child's fields,
the child rejects `payloadType`). .NET generates it that way and reads it through the
`discriminator`. `spark_spec()` therefore rewrites each discriminated family once:

- each child gets the base's properties merged in, with `payloadType` pinned to its own
  discriminator value and required (Spark's deserializer needs it to pick the type);
- a plain reference to the base (EventNotification.payload) becomes a `oneOf` of the children.

OpenAPI 3.0 cannot mark a `$ref` as nullable, so .NET leaves out `nullable` on optional
properties of object or enum type, and Spark's own examples then carry `"coordinates": null`
and `"locationType": null`. `spark_spec()` lets each optional (not `required`) property that
is a bare `$ref` also be null; required ones stay non-null.

It also writes the `Bearer` security scheme in lower case: HTTP auth schemes are
case-insensitive, but openapi-core compares the lower-cased header against the spec verbatim.

Everything else, including `additionalProperties: false`, is kept, so a field name that is
not in the spec still fails.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests
from openapi_core import Config, OpenAPI
from openapi_core.deserializing.media_types.util import json_loads
from openapi_core.testing import MockRequest, MockResponse
from openapi_schema_validator import OAS30Validator

ROOT = Path(__file__).resolve().parents[1]
# The copy shipped with the sandbox, else the reference copy beside the repository.
SPEC_CANDIDATES = (
    ROOT / "sandbox" / "openapi.json",
    ROOT.parent / "shared" / "spark" / "openapi.json",
)
API_PREFIX = "/energy-coordination/v1"
HOST_URL = "http://spark.invalid"

Body = bytes | str | Mapping[str, Any] | list[Any] | None


def spec_path() -> Path:
    for candidate in SPEC_CANDIDATES:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        "Spark's openapi.json not found in " + ", ".join(map(str, SPEC_CANDIDATES))
    )


@functools.cache
def spark_spec() -> dict[str, Any]:
    """The spec with discriminated families made checkable (see the module docstring)."""
    spec: dict[str, Any] = json.loads(spec_path().read_text(encoding="utf-8"))
    spec = _flatten_discriminated(spec)
    _allow_null_optional_refs(spec)
    for scheme in spec.get("components", {}).get("securitySchemes", {}).values():
        if scheme.get("type") == "http":
            scheme["scheme"] = scheme["scheme"].lower()
    return spec


@functools.cache
def _openapi() -> OpenAPI:
    # Spark's 400s are application/problem+json, which openapi-core does not parse by default.
    config = Config(extra_media_type_deserializers={"application/problem+json": json_loads})
    return OpenAPI.from_dict(spark_spec(), config=config)


def _flatten_discriminated(original: dict[str, Any]) -> dict[str, Any]:
    spec = copy.deepcopy(original)
    schemas: dict[str, Any] = spec["components"]["schemas"]
    for base_name, base in list(schemas.items()):
        discriminator = base.get("discriminator")
        if not discriminator:
            continue
        base_ref = f"#/components/schemas/{base_name}"
        prop = discriminator["propertyName"]
        children = []
        for value, child_ref in discriminator["mapping"].items():
            child = schemas[child_ref.rsplit("/", 1)[1]]
            rest = [part for part in child.get("allOf", []) if part.get("$ref") != base_ref]
            child.pop("allOf", None)
            if rest:
                child["allOf"] = rest
            child["properties"] = {
                **base.get("properties", {}),
                **child.get("properties", {}),
                prop: {"type": "string", "enum": [value]},
            }
            child["required"] = sorted({*child.get("required", []), prop})
            children.append({"$ref": child_ref})
        _replace_refs(spec, base_ref, {"oneOf": children})
    return spec


def _allow_null_optional_refs(spec: dict[str, Any]) -> None:
    for schema in spec["components"]["schemas"].values():
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            if name not in required and set(prop) == {"$ref"}:
                schema["properties"][name] = {"anyOf": [prop, {"enum": [None], "nullable": True}]}


def _replace_refs(node: Any, ref: str, replacement: dict[str, Any]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, dict) and value.get("$ref") == ref and len(value) == 1:
                node[key] = copy.deepcopy(replacement)
            else:
                _replace_refs(value, ref, replacement)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            if isinstance(value, dict) and value.get("$ref") == ref and len(value) == 1:
                node[index] = copy.deepcopy(replacement)
            else:
                _replace_refs(value, ref, replacement)


def _split(path: str, query: Mapping[str, str] | None) -> tuple[str, dict[str, str]]:
    """Accept a full URL or a path, with or without Spark's /energy-coordination/v1 prefix."""
    parts = urlsplit(path)
    merged = dict(parse_qsl(parts.query))
    merged.update(query or {})
    clean = parts.path
    if not clean.startswith(API_PREFIX + "/"):
        clean = API_PREFIX + "/" + clean.lstrip("/")
    return clean, merged


def _raw(body: Body) -> bytes:
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    return json.dumps(body).encode("utf-8")


def _request(
    method: str,
    path: str,
    *,
    body: Body,
    query: Mapping[str, str] | None,
    content_type: str,
    headers: Mapping[str, str] | None,
) -> MockRequest:
    clean, args = _split(path, query)
    return MockRequest(
        HOST_URL,
        method.lower(),
        clean,
        args=args,
        # The Bearer scheme is global in the spec; a shape check should not need a real token.
        headers=dict(headers) if headers is not None else {"Authorization": "Bearer checked"},
        data=_raw(body),
        content_type=content_type,
    )


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + " ..."


def _error_lines(errors: Iterable[Any]) -> list[str]:
    """One line per jsonschema error, with the errors of each `oneOf` branch indented."""
    lines = []
    for error in errors:
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        lines.append(f"  at {where}: {_short(error.message)}")
        for sub in error.context or ():
            sub_where = "/".join(str(p) for p in sub.absolute_path) or "(root)"
            lines.append(f"    - at {sub_where}: {_short(sub.message)}")
    return lines


def _describe(exc: Exception) -> str:
    cause: BaseException = exc.__cause__ or exc
    errors = getattr(cause, "schema_errors", None) or ()
    return "\n".join([f"{type(exc).__name__}: {_short(str(exc))}", *_error_lines(errors)])


def assert_request_matches(
    method: str,
    path: str,
    body: Body = None,
    *,
    query: Mapping[str, str] | None = None,
    content_type: str = "application/json",
    headers: Mapping[str, str] | None = None,
) -> None:
    """Fail unless a request to Spark (path, query, body) is what the spec accepts.

    `path` may be a full URL or a path, with or without the API prefix; `body` raw bytes/str
    or a JSON value. Without `headers`, a placeholder Bearer token satisfies the security check.
    """
    request = _request(
        method, path, body=body, query=query, content_type=content_type, headers=headers
    )
    try:
        _openapi().validate_request(request)
    except Exception as exc:
        raise AssertionError(
            f"{method.upper()} {request.path} does not match Spark's spec:\n{_describe(exc)}"
        ) from exc


def assert_response_matches(
    method: str,
    path: str,
    status: int,
    body: Body,
    content_type: str | None = "application/json",
    *,
    query: Mapping[str, str] | None = None,
) -> None:
    """Fail unless `status` is declared for the operation and `body` matches its schema."""
    request = _request(
        method, path, body=None, query=query, content_type="application/json", headers=None
    )
    response = MockResponse(
        _raw(body), status_code=status, content_type=content_type or "application/json"
    )
    try:
        _openapi().validate_response(request, response)
    except Exception as exc:
        raise AssertionError(
            f"{method.upper()} {request.path} -> {status} does not match Spark's spec:\n"
            f"{_describe(exc)}"
        ) from exc


def spec_checked_json(response: requests.Response) -> Any:
    """Assert a `requests` response from Spark (or the sandbox) matches the spec for the request
    that produced it, then return its JSON body (None when there is no body)."""
    sent = response.request
    assert sent.method is not None
    assert sent.url is not None
    assert_response_matches(
        sent.method,
        sent.url,
        response.status_code,
        response.content,
        response.headers.get("Content-Type"),
    )
    return response.json() if response.content else None


def assert_schema_matches(schema_name: str, value: Any) -> None:
    """Fail unless `value` (a JSON value, or raw JSON bytes/str) is a valid `schema_name`."""
    if isinstance(value, bytes | str):
        value = json.loads(value)
    spec = spark_spec()
    if schema_name not in spec["components"]["schemas"]:
        raise KeyError(f"no schema {schema_name!r} in Spark's spec")
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": spec["components"]}
    validator = OAS30Validator(schema, format_checker=OAS30Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(value), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        raise AssertionError(f"not a valid {schema_name}:\n" + "\n".join(_error_lines(errors)))


def assert_notification_matches(body: Body) -> None:
    """Fail unless a webhook body is a valid `EventNotification` (Spark's webhook envelope)."""
    assert body is not None, "a webhook notification needs a body"
    assert_schema_matches("EventNotification", body)
