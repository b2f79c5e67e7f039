"""OAuth2 client credentials, as Volue Identity's `/connect/token` answers them."""

from __future__ import annotations

import hmac
import math
from urllib.parse import unquote_plus

from flask import Blueprint, Response, request

from sandbox.core import current_sandbox
from sandbox.paths import TOKEN_PATH
from sandbox.responses import json_response

identity = Blueprint("identity", __name__)


@identity.post(TOKEN_PATH)
def issue_token() -> Response:
    sandbox = current_sandbox()
    config = sandbox.config
    if request.mimetype != "application/x-www-form-urlencoded":
        return _oauth_error(400, "invalid_request")
    basic = request.authorization
    used_basic = basic is not None and basic.type == "basic"
    if basic is not None and used_basic:
        # RFC 6749 2.3.1: id and secret are form-encoded before the Basic encoding.
        client_id = unquote_plus(basic.username or "")
        client_secret = unquote_plus(basic.password or "")
    else:
        client_id = request.form.get("client_id", "")
        client_secret = request.form.get("client_secret", "")
    known = hmac.compare_digest(client_id.encode(), config.client_id.encode())
    matches = hmac.compare_digest(client_secret.encode(), config.client_secret.encode())
    if not (known and matches):
        if used_basic:
            response = _oauth_error(401, "invalid_client")
            response.headers["WWW-Authenticate"] = 'Basic realm="spark-sandbox"'
            return response
        return _oauth_error(400, "invalid_client")
    grant_type = request.form.get("grant_type")
    if not grant_type:
        return _oauth_error(400, "invalid_request")
    if grant_type != "client_credentials":
        return _oauth_error(400, "unsupported_grant_type")
    body = {
        "access_token": sandbox.state.issue_token(config.token_ttl),
        "expires_in": math.ceil(config.token_ttl),
        "token_type": "Bearer",
    }
    response = json_response(200, body)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def _oauth_error(status: int, error: str) -> Response:
    response = json_response(status, {"error": error})
    response.headers["Cache-Control"] = "no-store"
    return response
