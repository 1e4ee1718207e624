"""The one place a runtime is chosen: from the agent's ``runtime.type``.

The agent core builds its runtime here and knows it only through
:class:`agent.runtimes.base.Runtime`; a second runtime (``kubernetes``) joins by
adding its configuration to the union in ``agent.config`` and a branch here.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from datetime import datetime

from agent.config import AgentConfig, KubernetesRuntimeConfig, LocalRuntimeConfig
from agent.journal import Journal, Source
from agent.runtimes.base import Runtime
from agent.runtimes.local import LocalRuntime
from agent.runtimes.local.env import LocalEnv
from ledger import gitrepo
from schemas import dataplane
from schemas.errors import UsageError

Renderer = Callable[
    [dataplane.KubernetesRuntime, Sequence[Source], str, frozenset[str]], tuple[str, list[str]]
]
"""Settings, commands (as their bundles carried them), an output format and the APIs the
cluster serves beyond the built-in ones to the text of their manifests, and what to warn of."""

NEEDS = {
    "local": ("mlflow", "pandas", "pyarrow", "sklearn", "skops", "picklescan"),
    "kubernetes": ("kubernetes",),
}
"""The modules each runtime imports as it works (the extra of :data:`EXTRAS`): checked at
start, so an install without them is refused at once, not at its first feature set or build."""
EXTRAS = {"local": "ml", "kubernetes": "kubernetes"}
"""The ``gitplane[...]`` extra that installs each runtime's :data:`NEEDS`."""


def for_config(config: AgentConfig, repo: gitrepo.GitRepo) -> Runtime:
    """The runtime ``config.runtime`` names, set up on ``repo`` (the agent's mirror, where
    MLflow Projects are read at the commit each command names)."""
    _check_installed(config)
    match config.runtime:
        case LocalRuntimeConfig() as local:
            return LocalRuntime(
                LocalEnv(
                    repo=repo,
                    tracking_uri=local.tracking_uri(config.state_dir),
                    state_dir=config.state_dir,
                    data_dir=local.data_path(config.state_dir),
                    ports=local.port_range(),
                    standby=local.standby_replicas,
                )
            )
        case KubernetesRuntimeConfig() as kubernetes:
            from agent.runtimes.kubernetes import (  # noqa: PLC0415 - an extra
                KubernetesRuntime,
                connect,
                kinds_with_state,
            )

            try:
                reach = connect.connector(kubernetes.kubeconfig)
            except connect.ConnectError as exc:
                raise UsageError(str(exc)) from None
            settings = Journal.load(config.state_dir / "journal.json").kubernetes
            kinds = kinds_with_state(config.state_dir)
            return KubernetesRuntime(reach, config.plane, settings=settings, kinds=kinds)


def renderer(config: AgentConfig) -> Renderer:
    """How ``gitplane agent render`` prints what the plane's runtime applies; a
    :class:`UsageError` for a runtime that applies no manifests (``local``)."""
    if not isinstance(config.runtime, KubernetesRuntimeConfig):
        raise UsageError(
            f"plane {config.plane!r} runs the {config.runtime.type} runtime, which applies no "
            "manifests: render is for a kubernetes plane's agent config (runtime.type: kubernetes)"
        )
    _check_installed(config)
    from agent.runtimes.kubernetes import (  # noqa: PLC0415 - an extra
        kinds_with_state,
        manifests,
        render,
    )

    kinds = kinds_with_state(config.state_dir)

    def draw(
        settings: dataplane.KubernetesRuntime,
        sources: Sequence[Source],
        output: str,
        served: frozenset[str],
    ) -> tuple[str, list[str]]:
        issued = [(s.command, render.Issue(s.spec_commit, _time(s.issued_at))) for s in sources]
        done = manifests.manifests(config.plane, settings, issued, kinds=kinds, served=served)
        return manifests.dumps(done.objects, output), done.warnings

    return draw


def _time(text: str) -> datetime:
    """A bundle's signed ``issued_at`` (``2026-04-10T03:00:00Z``) as a time."""
    return datetime.fromisoformat(text)


def _check_installed(config: AgentConfig) -> None:
    missing = [name for name in NEEDS.get(config.runtime.type, ()) if not _installed(name)]
    if missing:
        extra = EXTRAS[config.runtime.type]
        raise UsageError(
            f"the {config.runtime.type} runtime needs gitplane's {extra} extra (install gitplane "
            f"from where you did, with [{extra}]: pip install '.[{extra}]' in a clone); missing: "
            f"{', '.join(missing)}"
        )


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # ValueError: None in sys.modules, as if uninstalled
        return False
