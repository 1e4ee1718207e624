"""The support table's warnings for values a runtime does not apply: only those values, only on
planes of that runtime (``schemas.support``)."""

from __future__ import annotations

import pytest

from schemas import support
from schemas.crossref import Files
from schemas.parse import parse_spec

H = "apiVersion: gitplane.dev/v1alpha1\n"
PLANES = [
    H + "kind: DataPlane\nmetadata: {name: dev, labels: {env: dev}}\nspec: {runtime: local}\n",
    H + "kind: DataPlane\nmetadata: {name: prod, labels: {env: prod}}\n"
    "spec: {runtime: kubernetes}\n",
]


def model(spec: str) -> str:
    return (
        H + "kind: Model\nmetadata: {name: churn}\n"
        'spec: {version: "1", source: {project: {path: p}}' + spec + "}\n"
    )


def policy(env: str, security: str) -> str:
    return (
        H + "kind: Policy\nmetadata: {name: gates}\n"
        f"spec: {{planeSelector: {{matchLabels: {{env: {env}}}}}, security: {security}}}\n"
    )


@pytest.mark.parametrize(
    ("spec", "warned"),
    [
        pytest.param(
            model(", resources: {cpu: 500m}"), ["spec.resources.cpu (planes: dev)"], id="cpu-part"
        ),
        pytest.param(model(", resources: {cpu: '2'}"), [], id="cpu-whole"),
        pytest.param(
            model(", resources: {gpu: 1}"), ["spec.resources.gpu (planes: dev)"], id="gpu"
        ),
        pytest.param(model(", resources: {gpu: 0}"), [], id="no-gpu"),
        pytest.param(
            model(", scan: {timeout: 5m}"), ["spec.scan.timeout (planes: dev)"], id="scan"
        ),
        pytest.param(
            policy("dev", "{requireScan: false}"),
            ["spec.security.requireScan (planes: dev)"],
            id="scan-not-required",
        ),
        pytest.param(policy("dev", "{requireScan: true}"), [], id="scan-required"),
        pytest.param(policy("prod", "{requireScan: false}"), [], id="on-another-runtime"),
    ],
)
def test_a_value_the_local_runtime_does_not_apply_is_warned_about(
    spec: str, warned: list[str]
) -> None:
    files: Files = []
    for name, text in [*((f"plane-{i}.yaml", p) for i, p in enumerate(PLANES)), ("x.yaml", spec)]:
        document = parse_spec(name, text.encode()).document
        assert document is not None
        files.append((name, document))
    found = [
        f"{'.'.join(map(str, f.path))} (planes: {f.message.rsplit('(planes: ', 1)[1]}"
        for file, f in support.warnings(files)
        if file == "x.yaml"
    ]
    assert found == warned
