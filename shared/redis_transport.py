"""kombu's Redis transport, with one redis-py client per channel for its plain commands.

kombu's Redis channel builds a new `redis.Redis` for every publish (and every other
non-blocking command): `conn_or_acquire()` calls `_create_client()` each time, and redis-py's
constructor copies its table of about 170 response callbacks. In the ingress that was the
largest single cost of a webhook after Flask itself (README, "Benchmarks"). A `redis.Redis`
holds no connection of its own (each command borrows one from the pool) and may be shared
by threads, so one per channel, built on the channel's own pool, does the same work.

Only the client is kept: the pool, its connections and everything kombu does on a
connection error are unchanged. When kombu drops the channel's pools (a closed or broken
connection) the kept client no longer belongs to the current pool and is built again.
The blocking side (BRPOP, the asynchronous pool) is not touched.

Both Celery apps select it with `broker_transport` (see `transport_for`). Celery's checks
(`driver_type`, `implements`) are the stock transport's; the worker's banner and "Connected
to" line name the broker `shared.redis_transport:Transport://...`. With several broker URLs,
a failover `switch()` takes the transport from the URL again: the stock one, only slower.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import redis
from kombu.transport import redis as kombu_redis

TRANSPORT = "shared.redis_transport:Transport"


class Channel(kombu_redis.Channel):
    _plain_client: redis.Redis | None = None

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:
            return super()._create_client(asynchronous=True)  # type: ignore[no-untyped-call]
        client = self._plain_client
        if client is None or client.connection_pool is not self.pool:
            client = self._plain_client = super()._create_client()  # type: ignore[no-untyped-call]
        return client


class Transport(kombu_redis.Transport):
    Channel = Channel


def transport_for(redis_url: str) -> str | None:
    """The `broker_transport` for a Redis URL: ours for `redis://`, kombu's own otherwise.

    kombu's default TLS settings for a `rediss://` URL apply only when it resolves the
    transport from the URL, so such a URL keeps kombu's transport (and its per-publish
    clients). TLS asked for in the URL's query (`ssl_cert_reqs=...`) works with either.
    """
    return TRANSPORT if urlsplit(redis_url).scheme == "redis" else None
