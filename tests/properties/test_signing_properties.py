"""Property tests of Spark's webhook signature check (shared/signing.py).

What could fail: `verify` refusing a body signed with any of the configured secrets (a
rotation would drop webhooks), accepting a body changed in any byte or signed with a secret
not configured (a forgery getting in), or raising on a header of arbitrary text (a 500 where
a 401 is due).
"""

from __future__ import annotations

import base64

from hypothesis import assume, given
from hypothesis import strategies as st

from shared.signing import sign, verify

secrets = st.binary(min_size=1, max_size=64)
bodies = st.binary(max_size=2048)


@given(secret=secrets, others=st.lists(secrets, max_size=3), body=bodies, place=st.integers(0, 3))
def test_it_accepts_a_body_signed_with_any_configured_secret(
    secret: bytes, others: list[bytes], body: bytes, place: int
) -> None:
    configured = [*others]
    configured.insert(min(place, len(configured)), secret)

    assert verify(configured, body, sign(secret, body))


@given(secret=secrets, body=bodies.filter(bool), data=st.data())
def test_it_refuses_a_body_changed_in_any_byte(
    secret: bytes, body: bytes, data: st.DataObject
) -> None:
    index = data.draw(st.integers(0, len(body) - 1))
    flip = data.draw(st.integers(1, 255))
    changed = body[:index] + bytes([body[index] ^ flip]) + body[index + 1 :]

    assert not verify([secret], changed, sign(secret, body))


@given(secret=secrets, body=bodies, extra=st.binary(min_size=1, max_size=16))
def test_it_refuses_a_body_cut_short_or_made_longer(
    secret: bytes, body: bytes, extra: bytes
) -> None:
    signature = sign(secret, body)

    assert not verify([secret], body + extra, signature)
    if body:
        assert not verify([secret], body[:-1], signature)


@given(signer=secrets, configured=st.lists(secrets, min_size=1, max_size=3), body=bodies)
def test_it_refuses_a_signature_made_with_a_secret_not_configured(
    signer: bytes, configured: list[bytes], body: bytes
) -> None:
    assume(signer not in configured)

    assert not verify(configured, body, sign(signer, body))


@given(secret=secrets, body=bodies, header=st.one_of(st.none(), st.text(max_size=80)))
def test_it_answers_any_header_with_a_plain_yes_or_no(
    secret: bytes, body: bytes, header: str | None
) -> None:
    # Arbitrary text, non-ASCII included (WSGI hands headers over latin-1 decoded): never an
    # exception, and yes only for the one right signature.
    assert verify([secret], body, header) is (header == sign(secret, body))


@given(secret=secrets, body=bodies, digest=st.binary(max_size=64))
def test_it_refuses_any_other_digest_even_well_formed(
    secret: bytes, body: bytes, digest: bytes
) -> None:
    header = base64.b64encode(digest).decode("ascii")
    assume(header != sign(secret, body))

    assert not verify([secret], body, header)
