"""The agent's journal keeps, per resource, the command it was applied from with what its
bundle gave it (the spec commit and the signed issue time), across a restart; a journal
written before issue times were kept still loads, and its commands fall back to ``now``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from agent.journal import Journal, Source
from agent.runtimes.base import CancelToken
from schemas import signed

NOW = datetime(2026, 4, 10, 3, 0, tzinfo=UTC)
COMMAND = signed.Command(
    id="c1", action="apply", kind="Deployment", name="churn", spec="{}",
    digest="sha256:" + "0" * 64,
)  # fmt: skip
READY = signed.ResourceStatus(kind="Deployment", name="churn", phase="Ready", digest=COMMAND.digest)


def test_a_source_keeps_its_bundles_commit_and_issue_time_across_a_restart(
    tmp_path: Path,
) -> None:
    journal = Journal.load(tmp_path / "journal.json")
    source = Source(COMMAND, "a" * 40, "2026-04-09T22:00:00Z")
    journal.record(1, COMMAND, "applied", READY, source)
    again = Journal.load(tmp_path / "journal.json").sources["Deployment/churn"]
    assert again == source
    context = again.context(tmp_path, True, now=NOW, cancel=CancelToken())
    assert (context.spec_commit, context.now) == ("a" * 40, NOW)
    assert context.issued_at == datetime(2026, 4, 9, 22, 0, tzinfo=UTC)


def test_a_journal_from_before_issue_times_loads_without_them(tmp_path: Path) -> None:
    path = tmp_path / "journal.json"
    Journal.load(path).record(1, COMMAND, "applied", READY, Source(COMMAND, "b" * 40))
    body = json.loads(path.read_text())
    del body["sources"]["Deployment/churn"]["issued_at"]  # as an older agent wrote it
    path.write_text(json.dumps(body))
    source = Journal.load(path).sources["Deployment/churn"]
    assert (source.spec_commit, source.issued_at) == ("b" * 40, "")
    assert source.context(tmp_path, True, now=NOW, cancel=CancelToken()).issued_at is None
