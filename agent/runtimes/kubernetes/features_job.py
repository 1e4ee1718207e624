"""What a feature set's pod runs on a Kubernetes plane: the local runtime's computation
(``agent.runtimes.local.features``: the same code, not a copy) into Redis and a volume.

    python -m agent.runtimes.kubernetes.features_job --name NAME --digest sha256:<hex>
        --spec /etc/gitplane/spec.json --volume /features --path features
        --until 2026-11-24T12:00:00Z [--backfill] [--now ISO]

Invariants:

* It runs only the verified command: the spec file (the ConfigMap the agent made from the
  signed command) must hash to ``--digest`` (rendered into the pod by the agent), else
  nothing runs and it exits 2.
* ``--backfill``: computes the backfill chunk ``$JOB_COMPLETION_INDEX`` (an Indexed Job,
  one completion per chunk, chunks read up to ``--until``) and keeps no run state, so chunks
  run in parallel. Otherwise a scheduled run: the local runtime's run, its state in
  ``<volume>/<path>/<name>/state.json``, starting where the backfill's chunks end.
* The online store is the Redis server of ``$REDIS_URL`` (from the plane's Secret); the
  offline store is Parquet under ``<volume>/<path>/<name>/offline``; sources resolve inside
  the volume.
* Its outcome is one line of JSON in the termination message file (``rows``,
  ``sourceRows``, ``entities``, ``byEntity``, ``chunks``; ``error`` when it failed, with exit
  1), which the agent reads from the pod's status.
* The wall clock is read once, here at the pod's edge (``--now`` overrides it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from agent.runtimes.kubernetes.online import RedisOnline
from agent.runtimes.local import features
from agent.runtimes.local.features import store as featurestore
from ledger import envelope
from schemas import signed
from schemas.errors import GitplaneError
from schemas.featureset import FeatureSetSpec

TERMINATION_LOG = "/dev/termination-log"
Summary = dict[str, object]


def main(argv: Sequence[str] | None = None) -> int:
    """Run one feature set pod; 0 done, 1 the run failed, 2 the command was not the one
    verified (or cannot run at all)."""
    args = _parser().parse_args(argv)
    now = args.now or datetime.now(UTC)
    try:
        command = _verified(args.name, args.digest, args.spec)
        summary = _run(command, args, now.replace(microsecond=0))
    except features.StalledError as exc:
        return _report(args.termination_log, {"error": str(exc)}, 2)
    except GitplaneError as exc:
        return _report(args.termination_log, {"error": str(exc)}, 1)
    return _report(args.termination_log, summary, 1 if "error" in summary else 0)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="features_job", description=__doc__.split("\n")[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--digest", required=True, help="sha256:<hex> of the spec file")
    parser.add_argument("--spec", type=Path, required=True, help="the command's spec (JSON)")
    parser.add_argument("--volume", type=Path, required=True, help="the mounted volume")
    parser.add_argument("--path", default="features", help="the stores' folder in it")
    parser.add_argument("--until", type=_time, required=True, help="the backfill's end")
    parser.add_argument("--backfill", action="store_true", help="one chunk, by index")
    parser.add_argument("--now", type=_time, default=None)
    parser.add_argument("--termination-log", type=Path, default=Path(TERMINATION_LOG))
    return parser


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _verified(name: str, digest: str, path: Path) -> signed.Command:
    """The command whose spec is ``path``, if it hashes to ``digest``."""
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise features.StalledError(f"cannot read the command's spec: {exc}") from None
    if envelope.digest(text) != digest:
        found = envelope.digest(text)
        raise features.StalledError(f"the spec is {found}, not the verified {digest}: not run")
    return signed.Command(
        id=f"FeatureSet/{name}",
        action="apply",
        kind="FeatureSet",
        name=name,
        spec=text.decode(),
        digest=digest,
    )


def _run(command: signed.Command, args: argparse.Namespace, now: datetime) -> Summary:
    spec = features.read_spec(command)
    directory = args.volume / args.path / command.name
    directory.mkdir(parents=True, exist_ok=True)
    online = _online(spec)
    place = features.Place(directory, args.volume, online)
    if args.backfill:
        return _chunk(command.name, spec, place, args.until, now)
    return _scheduled(command, spec, place, args.until, now)


def _online(spec: FeatureSetSpec) -> featurestore.OnlineStore:
    if not spec.stores.online.enabled:
        return _Nowhere()
    url = os.environ.get("REDIS_URL")
    if not url:
        raise features.StalledError("REDIS_URL is not set: the plane has no onlineStore.redis")
    return RedisOnline(url)


def _chunk(
    name: str, spec: FeatureSetSpec, place: features.Place, until: datetime, now: datetime
) -> Summary:
    chunks = features.backfill_chunks(spec, until)
    index = int(os.environ.get("JOB_COMPLETION_INDEX", "0"))
    if not 0 <= index < len(chunks):
        raise features.StalledError(f"backfill chunk {index} does not exist ({len(chunks)})")
    batches = features.compute_batches(spec, place.data_dir, [chunks[index]])
    features.store_batches(name, spec, place, batches, now)
    return _summary(features.outcome(spec, batches))


def _scheduled(
    command: signed.Command,
    spec: FeatureSetSpec,
    place: features.Place,
    until: datetime,
    now: datetime,
) -> Summary:
    state = features.for_command(features.load_state(place.directory), command.digest)
    before = features.after_backfill(spec, state, until)
    after = features.run(command.name, spec, place, before, at=before.pending or now, now=now)
    if after.pending is not None:
        return {"error": after.message, "failures": after.failures}
    return _summary(after.outcome)


def _summary(outcome: features.Outcome) -> Summary:
    return {
        "rows": outcome.rows,
        "sourceRows": outcome.source_rows,
        "entities": outcome.entities,
        "byEntity": dict(outcome.by_entity),
        "chunks": outcome.chunks,
    }


def _report(path: Path, summary: Summary, code: int) -> int:
    line = json.dumps(summary, sort_keys=True, separators=(",", ":"))
    try:
        path.write_text(line[:4096] + "\n")  # the kubelet keeps at most 4096 bytes
    except OSError as exc:
        print(f"cannot write {path}: {exc}", file=sys.stderr)
    print(line, file=sys.stderr if code else sys.stdout)
    return code


class _Nowhere:
    """The online store of a feature set whose online store is disabled."""

    def upsert(self, *_: object, **__: object) -> None:
        """Nothing is written."""

    def rows(self, name: str) -> int:
        """Nothing is held."""
        return 0

    def get(self, name: str, keys: Sequence[object]) -> dict[str, object] | None:
        """Nothing is found."""
        return None

    def drop(self, name: str) -> None:
        """Nothing to remove."""


if __name__ == "__main__":
    sys.exit(main())
