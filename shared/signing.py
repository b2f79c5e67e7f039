"""Spark's webhook signature: base64(HMAC-SHA256(secret, raw body)).

Used by the ingress to verify and by the sandbox to sign, so both always agree.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable

SIGNATURE_HEADER = "X-Payload-Signature"


def sign(secret: bytes, body: bytes) -> str:
    return base64.b64encode(hmac.digest(secret, body, hashlib.sha256)).decode("ascii")


def verify(secrets: Iterable[bytes], body: bytes, header: str | None) -> bool:
    """True when `header` is a valid signature of `body` under any of `secrets`.

    WSGI hands headers over latin-1 decoded, so a non-ASCII byte arrives as a str that
    `compare_digest` would reject with TypeError (a 500). Decoding strictly to bytes first
    turns every malformed header into a plain "no".
    """
    if not header:
        return False
    try:
        received = base64.b64decode(header.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        return False
    if len(received) != hashlib.sha256().digest_size:
        return False
    matched = False
    # Check every secret, so timing does not reveal which one is current.
    for secret in secrets:
        expected = hmac.digest(secret, body, hashlib.sha256)
        matched |= hmac.compare_digest(expected, received)
    return matched
