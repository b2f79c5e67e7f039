"""A local stand-in for Volue Spark's Energy Coordination API (partner endpoints).

Paths, field names and status codes follow Spark's OpenAPI document (a copy ships as
`sandbox/openapi.json`); behaviour the spec leaves open follows the project's Spark API notes.
Besides Spark's own API the sandbox has an unauthenticated control surface under `/_sandbox/`
(fault switches, clock, request and delivery logs, neighbourhoods, eligibility windows, daily
price curves, accepted reports and report faults) that exists only here.

`create_app(config)` builds the Flask app and starts its background threads (webhook delivery,
eligibility windows, daily price curves and, when configured, the demo emitter);
`sandbox_of(app).stop()` ends them. `serve(...)` runs the app on a threaded werkzeug server and
is what `python -m sandbox` and the tests use.

Where things are: `sandbox.core` (the `Sandbox` behind the routes), `sandbox.routes` (one
blueprint per endpoint group), `sandbox.gate` (logging, faults and authentication before every
Spark request), `sandbox.responses` and `sandbox.parsing` (what the routes share),
`sandbox.directory` (users, locations, resources, enrollment, eligibility),
`sandbox.neighbourhoods`, `sandbox.eligibility` (announcement windows), `sandbox.daily_curves`
and `sandbox.curve_shapes` (the daily price curves), `sandbox.reports` (report rules and the
reports kept), `sandbox.report_faults`, `sandbox.compensation` (the formula), `sandbox.state`
(webhooks, events, logs, faults).
"""

from __future__ import annotations

import threading

from flask import Flask
from werkzeug.exceptions import HTTPException
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from sandbox.config import SandboxConfig
from sandbox.core import EXTENSION_KEY, Sandbox, sandbox_of
from sandbox.gate import before_request, http_error, rejected
from sandbox.parsing import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from sandbox.paths import API_PREFIX, CONTROL_PREFIX, SWAGGER_PATH, TOKEN_PATH
from sandbox.price_areas import PRICE_AREA_CURRENCIES
from sandbox.responses import Reject, pagination
from sandbox.routes import BLUEPRINTS
from sandbox.simulation import PriceCurveRequest, next_local_day_hours

__all__ = [
    "API_PREFIX",
    "CONTROL_PREFIX",
    "DEFAULT_PAGE_SIZE",
    "EXTENSION_KEY",
    "MAX_PAGE_SIZE",
    "PRICE_AREA_CURRENCIES",
    "SWAGGER_PATH",
    "TOKEN_PATH",
    "PriceCurveRequest",
    "RunningSandbox",
    "Sandbox",
    "SandboxConfig",
    "create_app",
    "next_local_day_hours",
    "pagination",
    "sandbox_of",
    "serve",
]


def create_app(config: SandboxConfig) -> Flask:
    sandbox = Sandbox(config)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 10 * 1024 * 1024
    app.extensions[EXTENSION_KEY] = sandbox
    app.register_error_handler(Reject, rejected)
    app.register_error_handler(HTTPException, http_error)
    app.before_request(before_request)
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    sandbox.start()
    return app


# Serving


class _QuietRequestHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


class RunningSandbox:
    """A sandbox app on a threaded werkzeug server in a background thread."""

    def __init__(
        self, config: SandboxConfig, *, host: str = "127.0.0.1", port: int = 0, quiet: bool = False
    ) -> None:
        self.app = create_app(config)
        self.sandbox = sandbox_of(self.app)
        try:
            self._server: BaseWSGIServer = make_server(
                host,
                port,
                self.app,
                threaded=True,
                request_handler=_QuietRequestHandler if quiet else None,
            )
        except BaseException:
            self.sandbox.stop()
            raise
        self.host = host
        self.port = self._server.port
        # A short poll interval makes stop() quick, which matters for tests' teardown.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="sandbox-http",
            daemon=True,
        )

    @property
    def root_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """Spark's API base URL, the prefix included."""
        return self.root_url + API_PREFIX

    @property
    def token_url(self) -> str:
        return self.root_url + TOKEN_PATH

    @property
    def control_url(self) -> str:
        return self.root_url + CONTROL_PREFIX

    def start(self) -> RunningSandbox:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=10)
        self._server.server_close()
        self.sandbox.stop()


def serve(
    config: SandboxConfig, *, host: str = "127.0.0.1", port: int = 0, quiet: bool = False
) -> RunningSandbox:
    """Start a sandbox server in a background thread; call `.stop()` to end it."""
    return RunningSandbox(config, host=host, port=port, quiet=quiet).start()
