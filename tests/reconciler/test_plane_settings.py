"""A plane's ``spec.kubernetes`` reaches its agent signed (ADR 0016), as ``selfHeal`` does.

The test world's Kubernetes plane (prod-eu) waits for approvals, so the block is given to
local-dev: the reconciler signs whatever the plane declares, whichever runtime reads it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from reconciler import reconcile as reconciling
from tests.reconciler.conftest import NOW, World


def _kubernetes(namespace: str) -> Callable[[Path], None]:
    def edit(work: Path) -> None:
        path = work / "planes" / "local-dev.yaml"
        kept = path.read_text().split("  kubernetes:")[0]
        path.write_text(f"{kept}  kubernetes:\n    namespace: {namespace}\n")

    return edit


@pytest.mark.effect("DataPlane", "spec.kubernetes.namespace")
def test_a_change_of_kubernetes_settings_alone_reaches_the_agent_at_once(world: World) -> None:
    """Adding or changing the block alone signs a bundle of no commands, once."""
    reconciler = reconciling.Reconciler(world.settings())
    reconciler.reconcile(NOW)
    before = reconciler.log.read("local-dev")
    assert before.bundles and before.bundles[-1].kubernetes is None
    for minute, namespace in ((1, "ml"), (3, "ml-eu")):
        world.change(f"local-dev settings: {namespace}", _kubernetes(namespace))
        reconciler.reconcile(NOW + timedelta(minutes=minute))
        newest = reconciler.log.read("local-dev").bundles[-1]
        assert newest.commands == []
        assert newest.kubernetes is not None and newest.kubernetes.namespace == namespace
        assert reconciler.reconcile(NOW + timedelta(minutes=minute + 1)).issued == {}
    assert reconciler.log.read("local-dev").head.sequence == before.head.sequence + 2
