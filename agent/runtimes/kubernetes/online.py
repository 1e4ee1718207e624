"""Feature sets' online store on a Kubernetes plane: a Redis server (the plane's
``spec.kubernetes.onlineStore.redis``), the only module that imports the ``redis`` client.

Layout, per feature set ``<name>``::

    gitplane:featureset:<name>                a set: the key of every entity held
    gitplane:featureset:<name>:<join keys>    a hash per entity (join key values as a JSON
                                              list): each feature, _event_time and
                                              _written_at, every value JSON-encoded

Invariants, the same as the local SQLite store's (:class:`store.OnlineStore`):

* One run's upsert is one ``MULTI``/``EXEC`` transaction.
* A value is never replaced by an older one: a script compares ``_event_time`` (fixed-width
  UTC text, so text order is time order) inside the server.
* Redis errors surface as ``RunError`` (the run is retried), never as ``RedisError``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import redis

from agent.runtimes.local import features
from agent.runtimes.local.features import store as featurestore

PREFIX = "gitplane:featureset"
_UPSERT = """
local old = redis.call('HGET', KEYS[1], '_event_time')
if old and cjson.decode(old) > ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('SADD', KEYS[2], KEYS[1])
return 1
"""
"""Write one entity's hash unless the stored one is newer; index it in the set."""


class RedisOnline:
    """An online store in the Redis server at ``url`` (``redis://:password@host:6379/0``)."""

    def __init__(self, url: str) -> None:
        try:
            self.client = redis.Redis.from_url(url)
        except ValueError as exc:  # an unreadable URL
            raise features.StalledError(f"REDIS_URL cannot be read: {exc}") from None

    def upsert(
        self, table: featurestore.OnlineTable, frames: Iterable[Any], *, written_at: datetime
    ) -> None:
        """Upsert every row of ``frames`` in one transaction, newest value winning."""
        names = [name for name, _ in table.columns]
        rows = featurestore.records(table, frames, written_at)
        with _said("write"):
            script = self.client.register_script(_UPSERT)
            pipeline = self.client.pipeline(transaction=True)
            for row in rows:
                record = dict(zip(names, row, strict=True))
                event = str(record[featurestore.EVENT_TIME])
                keys = [entity_key(table.name, [record[k] for k in table.keys]), index(table.name)]
                script(keys, [event, *_fields(record, table.keys)], client=pipeline)
            pipeline.execute()

    def rows(self, name: str) -> int:
        """How many entities feature set ``name`` holds."""
        with _said("read"):
            return int(self.client.scard(index(name)))

    def get(self, name: str, keys: Sequence[object]) -> dict[str, object] | None:
        """One entity's stored values (features, ``_event_time``, ``_written_at``) by its
        join key values in declaration order; None when it is unknown."""
        with _said("read"):
            found: dict[bytes, bytes] = self.client.hgetall(entity_key(name, keys))  # type: ignore[assignment]
        return {k.decode(): json.loads(v) for k, v in found.items()} or None

    def drop(self, name: str) -> None:
        """Remove every value of feature set ``name``."""
        with _said("clear"):
            held: set[bytes] = self.client.smembers(index(name))  # type: ignore[assignment]
            self.client.delete(index(name), *held)

    def close(self) -> None:
        """Close the connections."""
        self.client.close()


def index(name: str) -> str:
    """The set of feature set ``name``'s entity keys."""
    return f"{PREFIX}:{name}"


def entity_key(name: str, values: Sequence[object]) -> str:
    """The hash of one entity: its join key values, as a JSON list."""
    return f"{PREFIX}:{name}:{json.dumps(list(values), separators=(',', ':'))}"


def _fields(record: dict[str, Any], keys: Sequence[str]) -> list[str]:
    """``field, value, ...`` for HSET: every non-key column, JSON-encoded (null included)."""
    pairs = [(k, json.dumps(v)) for k, v in record.items() if k not in keys]
    return [part for pair in pairs for part in pair]


@contextmanager
def _said(doing: str) -> Iterator[None]:
    try:
        yield
    except redis.RedisError as exc:
        raise features.RunError(f"cannot {doing} the online store (Redis): {exc}") from None
