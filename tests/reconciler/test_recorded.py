"""The recorded state folded from a plane's verified bundles, carried on as the log grows."""

from __future__ import annotations

import random

from ledger import envelope
from reconciler.recorded import IssuedLog
from schemas import signed

NAMES = ["churn", "fraud", "ltv"]


def bundle(sequence: int, commands: list[tuple[str, str]]) -> signed.Bundle:
    """Bundle ``sequence`` carrying ``(name, spec)`` apply commands."""
    return signed.Bundle.model_validate(
        {
            "_type": "commands",
            "spec_version": "1",
            "plane": "dev",
            "sequence": sequence,
            "previous": "",
            "root_version": 1,
            "spec_commit": "a" * 40,
            "issued_at": f"2026-11-23T12:{sequence % 60:02d}:00Z",
            "commands": [
                {
                    "id": f"{name}-{sequence}",
                    "action": "apply",
                    "kind": "Deployment",
                    "name": name,
                    "spec": spec,
                    "digest": envelope.digest(spec.encode()),
                }
                for name, spec in commands
            ],
        }
    )


def log(length: int, seed: int) -> tuple[signed.Bundle, ...]:
    """A log of ``length`` bundles; specs repeat so that retries (attempts) are counted."""
    rng = random.Random(seed)
    return tuple(
        bundle(
            s, [(n, f'{{"r":{rng.randint(1, 2)}}}') for n in rng.sample(NAMES, rng.randint(1, 3))]
        )
        for s in range(1, length + 1)
    )


def test_carrying_the_fold_on_gives_what_folding_the_whole_log_gives() -> None:
    bundles = log(40, seed=1)
    folded = IssuedLog()
    for end in (0, 1, 7, 7, 20, 40):
        folded = folded.extend(bundles[:end])
        assert folded.issued == IssuedLog().extend(bundles[:end]).issued
    assert {i.attempts for i in folded.issued.values()} != {1}  # retries were counted


def test_an_unchanged_log_gives_the_same_fold() -> None:
    bundles = log(5, seed=2)
    folded = IssuedLog().extend(bundles)
    assert folded.extend(bundles) is folded


def test_a_rewritten_log_is_folded_anew() -> None:
    first, other = log(10, seed=3), log(12, seed=4)
    folded = IssuedLog().extend(first).extend(other)
    assert folded.issued == IssuedLog().extend(other).issued
    shorter = IssuedLog().extend(first).extend(first[:4])  # rolled back
    assert shorter.issued == IssuedLog().extend(first[:4]).issued
    assert shorter.bundles == first[:4]
