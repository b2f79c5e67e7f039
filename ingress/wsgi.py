"""The WSGI entry point for gunicorn: `gunicorn -c ingress/gunicorn_conf.py ingress.wsgi:app`."""

from __future__ import annotations

from ingress.app import create_app
from shared.config import load_settings

app = create_app(load_settings())
