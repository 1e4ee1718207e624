"""The embedded ``local`` runtime: everything on this machine, all real.

Models are built, scanned and registered with MLflow (``models.py``).
Serving deployments, computing feature sets and running DAGs locally are not
built yet: such commands are reported ``Pending`` with a message saying so,
never ``Ready``.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.runtimes.base import ApplyContext
from agent.runtimes.local import models
from ledger import gitrepo
from schemas import signed

NOT_YET = "the local runtime cannot apply {kind} yet (serving and jobs are planned)"


@dataclass
class LocalRuntime:
    """Applies commands on this machine."""

    repo: gitrepo.GitRepo
    """Where projects are read from (the agent's mirror, at each command's spec commit)."""
    tracking_uri: str

    def apply(self, command: signed.Command, context: ApplyContext) -> signed.ResourceStatus:
        """Make the resource match the command."""
        if command.kind == "Model":
            return models.build(command, context, repo=self.repo, tracking_uri=self.tracking_uri)
        return signed.ResourceStatus(
            kind=command.kind,
            name=command.name,
            phase="Pending",
            digest=command.digest,
            message=NOT_YET.format(kind=command.kind),
        )

    def delete(self, command: signed.Command) -> None:
        """Registered model versions are kept (the registry is history); nothing else runs."""
        del command
