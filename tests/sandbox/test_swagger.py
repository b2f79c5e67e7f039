"""`/swagger/Partner/swagger.json`: the spec, served where Spark serves it, without a token."""

from __future__ import annotations

import json

import requests

from tests.fixtures.sandbox import HTTP_TIMEOUT, SandboxHandle
from tests.spec import spec_path


def test_it_serves_the_openapi_document_without_authentication(sandbox: SandboxHandle) -> None:
    response = requests.get(
        sandbox.base_url + "/swagger/Partner/swagger.json", timeout=HTTP_TIMEOUT
    )

    assert response.status_code == 200
    assert response.json() == json.loads(spec_path().read_text(encoding="utf-8"))
