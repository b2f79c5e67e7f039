"""Where things live on the sandbox's HTTP server."""

from __future__ import annotations

API_PREFIX = "/energy-coordination/v1"
TOKEN_PATH = "/connect/token"  # noqa: S105 - a URL path, not a password
CONTROL_PREFIX = "/_sandbox"
# Where Spark publishes its OpenAPI document (unauthenticated); the sandbox serves its copy.
SWAGGER_PATH = API_PREFIX + "/swagger/Partner/swagger.json"
