"""The environment an endpoint serves a model version in: the agent's own, or one made from
the version's logged requirements when it was built in an environment of its own.

The build tags each version with the ``envManager`` it ran with (``gitplane.env_manager``);
no Deployment field decides it. The environment is made during the apply, by MLflow's own
managers (``_mlflow.prepare_model_env``), under the plane's env root beside the projects'
environments, and reused by every endpoint and apply with the same requirements: a replica
only starts its Python.
"""

from __future__ import annotations

import sys
from pathlib import Path

from agent.runtimes.base import ApplyContext
from agent.runtimes.local import _mlflow, models
from agent.runtimes.local.env import LocalEnv, env_manager_refusal
from schemas import commands
from schemas.errors import GitplaneError


class ModelEnvError(GitplaneError):
    """The model's own environment cannot be made on this plane."""


SERVING_MANAGERS = {"uv": "uv", "virtualenv": "virtualenv", "conda": "uv"}
"""Per manager a version was built with (its ``gitplane.env_manager`` tag), the one that makes
the environment it is served in from its logged requirements. A conda-built model is served
in a uv environment: every MLflow model logs a ``python_env.yaml`` beside its ``conda.yaml``,
with the same pip requirements."""


def serving_manager(built_with: str) -> str | None:
    """The MLflow manager that makes a version's serving environment, by the manager it was
    built with; None to serve it in the agent's own (``local``, an import from a registry, a
    version built before builds were tagged)."""
    return SERVING_MANAGERS.get(built_with)


def python(
    env: LocalEnv,
    model: commands.PinnedModel,
    model_dir: Path,
    context: ApplyContext,
    *,
    timeout: float,
) -> str:
    """The interpreter the endpoint's replicas run. A version built in an environment of its
    own is served in one made from its logged requirements, during this apply (never when a
    replica starts) and reused by every endpoint and apply with the same requirements."""
    tags = _mlflow.version_tags(env.tracking_uri, model.name, model.registry_version)
    manager = serving_manager(tags.get(models.TAG_ENV_MANAGER, "local"))
    if manager is None:
        return sys.executable
    refused = env_manager_refusal(model.uri, manager, env.env_managers)
    if refused:
        raise ModelEnvError(f"cannot serve it in its own environment: {refused}")
    return _mlflow.prepare_model_env(
        model_dir,
        manager=manager,
        env_root=env.env_root,
        workdir=context.scratch / "model-env",
        timeout=timeout,
        cancel=context.cancel,
        progress=context.progress,
    )
