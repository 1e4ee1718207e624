"""The embedded ``local`` runtime: everything on this machine, all real.

Each kind is a package whose ``__init__`` offers the same three functions
(``apply``, ``observe``, ``delete``), its helpers beside it:

* ``Model`` — built, scanned and registered with MLflow (``models/``, with
  ``scan``);
* ``FeatureSet`` — computed from its source into an online (SQLite) and an
  offline (Parquet) store, on its schedule (``features/``, with ``store``);
* ``DAG`` — steps run as MLflow Projects, partitioned, retried, logged as
  parent and child runs, on its schedule (``dags/``);
* ``Deployment`` — replicas of MLflow's scoring server behind a measuring
  proxy, rolled and autoscaled by a supervisor process (``serving/``, with
  ``endpoint``, ``proxy``, ``replicas``, ``desired``, ``autoscale``).

Shared by them: ``_mlflow`` (the one module that imports MLflow), ``env`` and
``cron``.
"""

from __future__ import annotations

from types import ModuleType

from agent.runtimes.base import ApplyContext, Capabilities
from agent.runtimes.local import dags, features, models, serving
from agent.runtimes.local.env import LocalEnv
from schemas import signed

_KINDS: dict[str, ModuleType] = {
    "Model": models,
    "FeatureSet": features,
    "DAG": dags,
    "Deployment": serving,
}


class LocalRuntime:
    """Applies commands on this machine."""

    kinds = frozenset(_KINDS)
    jobs = frozenset({"DAG", "FeatureSet"})
    retried = frozenset({"Model", "Deployment"})

    def __init__(self, env: LocalEnv) -> None:
        self.env = env
        self.capabilities = Capabilities(
            env_managers=env.env_managers, enforces_resources=True
        )  # the managers found on this machine when ``env`` was built, not assumed

    def apply(self, command: signed.Command, context: ApplyContext) -> signed.ResourceStatus:
        """Make the resource match the command (nothing starts once ``context.cancel`` is set)."""
        context.cancel.check()
        result: signed.ResourceStatus = _KINDS[command.kind].apply(command, context, self.env)
        return result

    def observe(
        self, command: signed.Command, last: signed.ResourceStatus, context: ApplyContext
    ) -> signed.ResourceStatus:
        """What the resource looks like at ``context.now`` (drift healed, due runs run)."""
        result: signed.ResourceStatus = _KINDS[command.kind].observe(
            command, last, context, self.env
        )
        return result

    def delete(self, command: signed.Command) -> None:
        """Stop and remove what the resource started."""
        _KINDS[command.kind].delete(command, self.env)

    def stop_serving(self) -> int:
        """Stop every endpoint's supervisor and replicas; their files stay."""
        return serving.stop_all(self.env.state_dir)
