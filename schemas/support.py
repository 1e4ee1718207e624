"""Fields a spec may set that a runtime does not enforce, or refuses: the support table.

A field that is accepted and silently ignored is a promise broken. Every leaf field of
every kind either has a test showing its effect (marked ``@pytest.mark.effect``) or a row
here saying what a runtime does instead; ``tests/schemas/test_support_rule.py`` fails
when a field has neither. docs/reference/support.md is generated from this table
(``gitplane schema docs``), and ``validate``, ``plan`` and ``status`` warn wherever a spec
sets a listed field on a plane of that runtime (file, line and column, as problems are),
naming the planes; the checks stay warnings (the spec is valid, and the plane reports what
it refuses). Pure: the parsed documents in, warnings by file out (placed at lines by
``parse.locate``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from pydantic import BaseModel

from schemas.common import parse_quantity
from schemas.crossref import Files, Located
from schemas.dataplane import DataPlane
from schemas.document import Document
from schemas.hints import Found

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Unsupported:
    """One field one runtime does not apply as written."""

    runtime: str
    kind: str
    path: str
    """Dotted, by the YAML names, ``[]`` for every item of a list: ``spec.steps[].timeout``."""
    why: str
    """What happens instead, in a warning's words."""
    when: Callable[[object], bool] | None = None
    """Warn only for values it holds (None: whenever the spec sets the field)."""
    when_text: str = ""
    """``when`` in words, for the table."""


def _gpus(value: object) -> bool:
    return isinstance(value, int) and value > 0


def _fraction(value: object) -> bool:
    return isinstance(value, str) and not parse_quantity(value).is_integer()


def _off(value: object) -> bool:
    return value is False


def _above_one(value: object) -> bool:
    return isinstance(value, int) and value > 1


def _overlapping(value: object) -> bool:
    return value in ("Allow", "Replace")


_FEATURE_JOBS = "not enforced by the local runtime: feature jobs run inside the agent's own process"
_AGENT_CONFIG = (
    "not read by the local runtime: its agent uses {} from its own configuration file "
    "(docs/agent.md); keep the two equal"
)
_KUBERNETES = (
    "namespace",
    "context",
    "mlflowTrackingUri",
    "images.serving",
    "images.build",
    "images.agent",
    "source.url",
    "source.secret",
    "autoscaling.prometheus.url",
    "onlineStore.redis.secret",
    "offlineStore.volume",
    "offlineStore.path",
)
_NO_GPU = "refused by the local runtime, which schedules no GPUs (Blocked there)"
_ROUNDED = "rounded up to whole CPUs by the local runtime (it limits CPUs by affinity)"
_ONE_AT_A_TIME = (
    "not applied by the local runtime: runs never overlap and none is replaced; a run that "
    "falls due during another starts when that one ends, as with Forbid"
)


def _resources(kind: str, prefix: str) -> tuple[Unsupported, ...]:
    return (
        Unsupported("local", kind, f"{prefix}.gpu", _NO_GPU, _gpus, "above 0"),
        Unsupported("local", kind, f"{prefix}.cpu", _ROUNDED, _fraction, "not a whole number"),
    )


TABLE: tuple[Unsupported, ...] = (
    *_resources("Model", "spec.resources"),
    *_resources("Deployment", "spec.resources"),
    *_resources("DAG", "spec.steps[].resources"),
    Unsupported("local", "FeatureSet", "spec.resources.cpu", _FEATURE_JOBS),
    Unsupported("local", "FeatureSet", "spec.resources.memory", _FEATURE_JOBS),
    Unsupported("local", "FeatureSet", "spec.resources.gpu", _FEATURE_JOBS),
    Unsupported(
        "local",
        "FeatureSet",
        "spec.backfill.parallelism",
        "not applied by the local runtime: backfill chunks are computed one after another",
        _above_one,
        "above 1",
    ),
    *(
        Unsupported(
            "local",
            kind,
            "spec.schedule.concurrencyPolicy",
            _ONE_AT_A_TIME,
            _overlapping,
            "Allow or Replace",
        )
        for kind in ("FeatureSet", "DAG")
    ),
    Unsupported(
        "local",
        "Deployment",
        "spec.rollout.autoRollback",
        "has no effect on the local runtime: the old replicas keep serving when a new "
        "version fails",
        _off,
        "false",
    ),
    *(
        Unsupported(
            "kubernetes",
            "DAG",
            f"spec.steps[].retry.{name}",
            "not applied by the kubernetes runtime: a step's Job retries a failed pod after "
            "Kubernetes' own delay (10s, doubling up to 6m); a Job has no field for it",
        )
        for name in ("backoff", "maxBackoff")
    ),
    Unsupported(
        "kubernetes",
        "DAG",
        "spec.schedule.concurrencyPolicy",
        _ONE_AT_A_TIME.replace("local", "kubernetes"),
        _overlapping,
        "Allow or Replace",
    ),
    Unsupported(
        "local",
        "Model",
        "spec.scan.timeout",
        "not enforced by the local runtime: the scan runs inside the agent's own process, "
        "without a time limit",
    ),
    Unsupported(
        "local",
        "Policy",
        "spec.security.requireScan",
        "has no effect: no deployment serves a model version without a passing scan, "
        "whatever a policy says",
        _off,
        "false",
    ),
    Unsupported(
        "local",
        "DataPlane",
        "spec.local.mlflowTrackingUri",
        _AGENT_CONFIG.format("runtime.mlflowTrackingUri"),
    ),
    Unsupported(
        "local", "DataPlane", "spec.local.ports.start", _AGENT_CONFIG.format("runtime.ports")
    ),
    Unsupported(
        "local", "DataPlane", "spec.local.ports.end", _AGENT_CONFIG.format("runtime.ports")
    ),
    *(
        Unsupported(
            "local",
            "DataPlane",
            f"spec.kubernetes.{name}",
            "ignored on a local plane: the local runtime reads no kubernetes settings",
        )
        for name in _KUBERNETES
    ),
)
"""Every field a runtime does not enforce as written."""

_BY_KIND: dict[str, tuple[Unsupported, ...]] = {}
for _row in TABLE:
    _BY_KIND[_row.kind] = (*_BY_KIND.get(_row.kind, ()), _row)


@dataclass
class _Planes:
    planes: list[DataPlane]
    memo: dict[str, list[DataPlane]] = field(default_factory=dict)
    """Selector (as JSON) -> the planes it selects: selectors repeat across thousands of
    specs."""

    def of(self, doc: Document) -> list[DataPlane]:
        """The planes ``doc`` lands on (every plane for a model built where it is deployed;
        a DataPlane is its own)."""
        if isinstance(doc, DataPlane):
            return [doc]
        selector = doc.plane_selector
        if selector is None:
            return self.planes
        key = selector.model_dump_json()
        if key not in self.memo:
            self.memo[key] = [p for p in self.planes if selector.matches(p.metadata.labels)]
        return self.memo[key]


def warnings(files: Files) -> list[Located]:
    """Every warning of a tree, by file (not yet placed at a line)."""
    planes = _Planes([doc for _, doc in files if isinstance(doc, DataPlane)])
    return [(file, found) for file, doc in files for found in _document(doc, planes)]


def _document(doc: Document, planes: _Planes) -> Iterator[Found]:
    rows = _BY_KIND.get(doc.KIND)
    if not rows:
        return
    on: list[DataPlane] | None = None
    for row in rows:
        for location, value in set_values(doc, row.path):
            if row.when is not None and not row.when(value):
                continue
            on = planes.of(doc) if on is None else on  # looked up only when something is set
            names = sorted(p.name for p in on if p.spec.runtime == row.runtime)
            if names:
                yield Found(location, f"{row.why} (planes: {', '.join(names)})", on_key=True)


def set_values(model: BaseModel, path: str) -> Iterator[tuple[Path, object]]:
    """The values a document sets (not defaults) at a dotted ``path``, with where."""
    yield from _walk(model, path.replace("[]", ".[]").split("."), ())


def _walk(node: object, parts: list[str], at: Path) -> Iterator[tuple[Path, object]]:
    if not parts:
        yield at, node
        return
    head, rest = parts[0], parts[1:]
    if head == "[]":
        if isinstance(node, list):
            for i, item in enumerate(node):
                yield from _walk(item, rest, (*at, i))
        return
    if not isinstance(node, BaseModel):
        return
    name = _field_of(type(node), head)
    if name is not None and name in node.model_fields_set:
        yield from _walk(getattr(node, name), rest, (*at, head))


def _field_of(model: type[BaseModel], alias: str) -> str | None:
    for name, info in model.model_fields.items():
        if (info.alias or name) == alias:
            return name
    return None


RUNTIMES = ("local", "kubernetes")
"""The runtimes a DataPlane may name, in the order the table lists them."""


def render() -> str:
    """docs/reference/support.md: per runtime, every field it does not apply as written."""
    lines = [
        "# What each runtime does not enforce",
        "",
        "<!-- Generated from schemas/support.py by `gitplane schema docs`; do not edit. -->",
        "",
        "Every field of every kind either has an effect that a test shows, or is listed here",
        "for the runtimes that do not apply it as written (`tests/schemas/test_support_rule.py`",
        "fails when a field has neither). `gitplane validate`, `plan` and `status` warn at",
        "file:line:column wherever a spec sets a listed field on a plane of that runtime.",
        "",
    ]
    for runtime in RUNTIMES:
        rows = [row for row in TABLE if row.runtime == runtime]
        lines += [f"## `{runtime}`", ""]
        if not rows:
            lines += ["Every field is enforced.", ""]
            continue
        lines += ["| kind | field | when set to | what happens |", "|---|---|---|---|"]
        for row in sorted(rows, key=lambda r: (r.kind, r.path)):
            when = row.when_text or "any value"
            lines.append(f"| {row.kind} | `{row.path}` | {when} | {row.why} |")
        lines.append("")
    return "\n".join(lines)
