"""How the agent reaches its cluster: a kubeconfig file, or the pod's service account.

The agent's own file says which (``runtime.kubeconfig``; ADR 0016: the one thing about a
Kubernetes plane that cannot be signed centrally); the plane's signed settings may name a
``context`` of that kubeconfig. The official client's loaders run here and their errors
become :class:`ConnectError` with what to fix.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException

from schemas.errors import GitplaneError

Connect = Callable[[str | None], client.ApiClient]
"""An API client for a kubeconfig context (None: the kubeconfig's current context, or the
service account in a cluster)."""


class ConnectError(GitplaneError):
    """The cluster's configuration cannot be loaded: a missing or broken kubeconfig, an
    unknown context, or in-cluster configuration outside a cluster."""


def connector(kubeconfig: Path | None) -> Connect:
    """A :data:`Connect` over ``kubeconfig`` (None: in-cluster), checked once now, so that
    an agent that cannot reach its cluster is refused at start."""
    if kubeconfig is None:
        _in_cluster(None)
        return _in_cluster
    try:
        config.list_kube_config_contexts(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    except (ConfigException, OSError, ValueError) as exc:
        raise ConnectError(f"kubeconfig {kubeconfig}: {exc}") from None

    def connect(context: str | None) -> client.ApiClient:
        try:
            made: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
                config_file=str(kubeconfig), context=context
            )
        except (ConfigException, OSError, ValueError) as exc:
            raise ConnectError(f"kubeconfig {kubeconfig}: {exc}") from None
        return made

    return connect


def _in_cluster(context: str | None) -> client.ApiClient:
    if context is not None:
        raise ConnectError(
            f"the plane's settings name kubeconfig context {context!r}, but this agent uses "
            "its pod's service account (no runtime.kubeconfig in its config)"
        )
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except ConfigException as exc:
        raise ConnectError(
            f"in-cluster configuration: {exc} (outside a cluster, give runtime.kubeconfig)"
        ) from None
    return client.ApiClient(configuration)
