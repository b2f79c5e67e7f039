"""shared.signing: Spark's base64(HMAC-SHA256(secret, raw body)) scheme."""

from __future__ import annotations

import pytest

from shared.signing import sign, verify

SECRET = b"test-secret-please-rotate"

# Reliability notes §(c) 14, cross-checked there with `openssl dgst -sha256 -hmac … | base64`.
VECTORS = [
    (b"", "bhz+yBeWAFw9t5eEHP2MUlJI/IXCz97hOY0ywunl4B4="),
    (b'{"eventId":"evt_1","amount":12.5}', "codzPBXRu9SW7tCW4GEhbAIPkoPqNFbLX9zIPwOEdEo="),
    (b'{"eventId": "evt_1", "amount": 12.5}', "nRouffl2ATuLzlYuNmZkCljAMZX24Mrb3+WJB2zuHok="),
    (
        '{"eventId":"evt_1","navn":"Bjørn"}'.encode(),
        "9zufPv6SFCiLz3nmc6pUJvwbT5VRgfMFMyXc+r07pKU=",
    ),
]


@pytest.mark.parametrize(("body", "signature"), VECTORS)
def test_it_matches_the_known_answers(body: bytes, signature: str) -> None:
    assert sign(SECRET, body) == signature
    assert verify([SECRET], body, signature)


def test_it_tells_a_reserialized_body_from_the_original() -> None:
    compact, spaced = VECTORS[1][0], VECTORS[2][0]

    assert not verify([SECRET], spaced, sign(SECRET, compact))


def test_it_accepts_any_of_several_secrets_and_nothing_else() -> None:
    body = VECTORS[1][0]
    current, previous = b"secret-after-rotation", SECRET

    assert verify([current, previous], body, sign(previous, body))
    assert verify([current, previous], body, sign(current, body))
    assert not verify([current, previous], body, sign(b"a-third-secret", body))
    assert not verify([], body, sign(SECRET, body))


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "codzPBXRu9SW7tCW4GEhbAIPkoPqNFbLX9zIPwOEdEo=".swapcase(),
        "codzPBXRu9SW7tCW4GEhbAIPkoPqNFbLX9zIPwOEdEo",
        "codzPBXRu9SW7tCW4GEhbAIPkoPqNFbLX9zIPwOEdEo=\x00",
        "codz PBXRu9SW7tCW4GEhbAIPkoPqNFbLX9zIPwOEdEo=",
        "\xe9codzPBXRu9SW7tCW4GEhbAIPkoPqNFbLX9zIPwOEdEo=",
        "codzPBXRu9SW7tCW4GEhbAIPkoPqNFbLX9zIPwOEdEo=codzPBXRu9SW7tCW4GEhbAIPkoPqNFbLX9zIPwOEdEo=",
        "Y29keg==",
    ],
    ids=[
        "missing", "empty", "swapped-case", "unpadded", "trailing-nul", "inner-space",
        "non-ascii", "doubled", "short",
    ],
)  # fmt: skip
def test_it_rejects_malformed_signatures_without_raising(header: str | None) -> None:
    assert not verify([SECRET], VECTORS[1][0], header)
