"""The agent's configuration file: strict, with clear errors."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from agent.config import KubernetesRuntimeConfig, load_config
from schemas.errors import UsageError

GOOD = "plane: local-dev\nrepo: /srv/specs.git\nrootFile: root.json\nkeyFile: k.key\nstateDir: s\n"


def test_defaults_and_relative_paths(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(GOOD)
    config = load_config(path)
    assert config.root_file == tmp_path / "root.json"
    assert config.state_dir == tmp_path / "s"
    assert config.poll_seconds == 10
    assert config.branch == "main"
    assert config.runtime.type == "local"  # the embedded runtime when none is named
    assert (
        config.runtime.tracking_uri(config.state_dir) == f"sqlite:///{tmp_path / 's' / 'mlflow.db'}"
    )


def test_the_runtime_is_chosen_by_its_type(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(GOOD + "runtime: {ports: 31000-31099, dataDir: d}\n")
    config = load_config(path)
    assert config.runtime.type == "local"  # a type left out is the local one
    assert config.runtime.port_range() == (31000, 31099)
    assert config.runtime.data_path(config.state_dir) == tmp_path / "d"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(GOOD + "pollIntervl: 5s\n", "pollIntervl", id="unknown-field"),
        pytest.param(GOOD.replace("plane: local-dev", "plane: Local_Dev"), "plane", id="bad-name"),
        pytest.param(GOOD + "x: &a 1\n", "anchor", id="anchor"),
        pytest.param(GOOD.replace("repo: /srv/specs.git\n", ""), "repo: missing", id="missing"),
        pytest.param(
            GOOD + "pollIntervl: 5s\n",
            "pollIntervl: unknown field 'pollIntervl' \\(did you mean 'pollInterval'\\?\\)",
            id="did-you-mean",
        ),
        pytest.param(
            GOOD + "remote: /srv/other.git\n",
            "remote and repo are the same field; keep repo",
            id="old-and-new-name",
        ),
        pytest.param(
            GOOD + "runtime: {type: nomad}\n",
            r"runtime: unknown runtime type \(this release has: local, kubernetes\)",
            id="unknown-runtime",
        ),
        pytest.param(
            GOOD + "runtime: {type: local, replicas: 2}\n",
            "runtime.replicas: unknown field 'replicas'",
            id="runtime-field",
        ),
        pytest.param(
            GOOD + "runtime: {type: kubernetes, kubeconfg: k}\n",
            r"runtime.kubeconfg: unknown field 'kubeconfg' \(did you mean 'kubeconfig'\?\)",
            id="kubernetes-did-you-mean",
        ),
        pytest.param(
            GOOD + "runtime: {type: kubernetes, namespace: ml}\n",
            "runtime.namespace: unknown field 'namespace'",
            id="kubernetes-settings-are-signed-not-configured",
        ),
        *(
            pytest.param(
                GOOD + f"runtime: {{type: local, ports: '{ports}'}}\n",
                r"runtime.ports: .*expected START-END with 1024 <= START <= END <= 65535",
                id=f"ports-{ports}",
            )
            for ports in ("99999-5", "30000-20000", "80-90", "60000-70000")
        ),
    ],
)
def test_bad_configs_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(text)
    with pytest.raises(UsageError, match=message):
        load_config(path)


def test_a_kubernetes_runtime_names_its_kubeconfig_beside_the_file(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(GOOD + "runtime: {type: kubernetes, kubeconfig: kube/config}\n")
    runtime = load_config(path).runtime
    assert isinstance(runtime, KubernetesRuntimeConfig)
    assert runtime.kubeconfig == tmp_path / "kube" / "config"
    path.write_text(GOOD + "runtime: {type: kubernetes}\n")
    assert load_config(path).runtime == KubernetesRuntimeConfig(type="kubernetes")  # in-cluster


def test_old_field_names_still_work_with_a_warning_naming_the_new_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``remote`` and ``specBranch`` became ``repo`` and ``branch``, as the reconciler's
    ``--repo`` and ``--branch``; a config written before keeps working."""
    path = tmp_path / "agent.yaml"
    path.write_text(GOOD.replace("repo:", "remote:") + "specBranch: release\n")
    with caplog.at_level(logging.WARNING, logger="gitplane.agent"):
        config = load_config(path)
    assert (config.repo, config.branch) == ("/srv/specs.git", "release")
    assert [r.getMessage() for r in caplog.records] == [
        f"warning: {path}: remote is deprecated; rename it repo",
        f"warning: {path}: specBranch is deprecated; rename it branch",
    ]
    caplog.clear()
    path.write_text(GOOD)
    load_config(path)
    assert caplog.records == []
