"""How the planner decides one plane's actions: the document index, the per-plane context,
the gates applied to each resource, and deletions. Pure: no git, no clock, no I/O.

:func:`reconciler.plan.plan` runs it over every plane at once; :mod:`reconciler.replan`
re-decides only what a change reaches, with the same pieces.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from ledger.commands import new_command
from reconciler import fielddiff, gates
from reconciler.planned import ORDER, Action, Desired, Op, PlanePlan
from reconciler.recorded import Issued, Key, RecordedPlane, spec_json
from schemas import commands, signed
from schemas.common import LabelSelector
from schemas.dag import DAG
from schemas.dataplane import DataPlane
from schemas.deployment import Deployment
from schemas.document import Document
from schemas.kinds import projects_of
from schemas.model import Model
from schemas.policy import Policy

SelectorKey = tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str, tuple[str, ...]], ...]]


def _selector_key(selector: LabelSelector) -> SelectorKey:
    return (
        tuple(sorted(selector.match_labels.items())),
        tuple((e.key, e.operator, tuple(e.values)) for e in selector.match_expressions),
    )


@dataclass(frozen=True)
class PlanePolicies:
    """The policies selecting one plane, with an identity key computed once."""

    items: tuple[Policy, ...]
    key: int
    """Small and equal for equal sets of policies (interned by the index)."""


@dataclass
class _DocMemo:
    """What planning one document computes once however many planes select it."""

    doc: Document
    declared: tuple[dict[str, object], str, str] | None = None
    """Declared body, its JSON, that JSON's digest."""
    depends: list[Key] | None = None
    commands: dict[tuple[str, str, str], signed.Command] = field(default_factory=dict)
    """(digest, action, reason) -> the one command object planes share."""
    actions: dict[tuple[object, ...], Action | None] = field(default_factory=dict)
    """Actions planes share (see ``_memo_key``)."""


@dataclass(frozen=True)
class Index:
    """Documents grouped by distinct plane selector: each selector is matched once per plane,
    not once per document (10,000 specs share a handful of selectors)."""

    selectors: tuple[LabelSelector, ...]
    groups: tuple[tuple[_Member, ...], ...]
    """Per selector, the resources it is the selector of, in dependency order."""
    uses: tuple[frozenset[str], ...]
    """Per selector, the models its deployments serve."""
    unselected: Mapping[str, _Member]
    """Models without a selector, by name: built where a deployment uses them."""
    policies: tuple[Policy, ...]
    memos: dict[int, _DocMemo] = field(default_factory=dict)
    """Per document, by ``id`` (the memo holds the document, so the id stays its own)."""
    verdicts: dict[tuple[str, int], str | None] = field(default_factory=dict)
    reasons: dict[int, str | None] = field(default_factory=dict)
    """Per policy (by ``id``; ``policies`` holds them): :func:`gates.policy_reason`."""
    policy_sets: dict[tuple[int, ...], int] = field(default_factory=dict)

    def memo(self, doc: Document) -> _DocMemo:
        """The memo of ``doc``."""
        found = self.memos.get(id(doc))
        if found is None:
            found = self.memos[id(doc)] = _DocMemo(doc)
        return found

    def forget(self, doc: Document) -> None:
        """Drop what was computed for ``doc`` (it changed, or its project did)."""
        self.memos.pop(id(doc), None)

    def declared(self, doc: Document, desired: Desired) -> tuple[dict[str, object], str, str]:
        """The document's declared body, as JSON, and that JSON's digest."""
        memo = self.memo(doc)
        if memo.declared is None:
            body = _declared(doc, desired)
            text = spec_json(body)
            memo.declared = (body, text, gates.digest(text))
        return memo.declared

    def plane_policies(self, labels: dict[str, str]) -> PlanePolicies:
        """The policies selecting a plane with ``labels``, as an interned set."""
        items = tuple(p for p in self.policies if p.spec.plane_selector.matches(labels))
        key = self.policy_sets.setdefault(tuple(id(p) for p in items), len(self.policy_sets))
        return PlanePolicies(items, key)

    def dependencies(self, doc: Document) -> list[Key]:
        """``doc`` and what its action depends on (memoized per document)."""
        memo = self.memo(doc)
        if memo.depends is None:
            memo.depends = _dependencies(doc)
        return memo.depends

    def policy_block(
        self, kind: str, policies: PlanePolicies, desired: Desired, now: datetime
    ) -> str | None:
        """:func:`gates.policy_block`, once per kind and set of policies: a verdict depends on
        nothing else within one plan (planes share policies; resources share kinds)."""
        key = (kind, policies.key)
        if key not in self.verdicts:
            self.verdicts[key] = next(
                (
                    reason
                    for policy in policies.items
                    if kind in policy.spec.kinds
                    and (reason := self._policy_reason(policy, desired, now))
                ),
                None,
            )
        return self.verdicts[key]

    def _policy_reason(self, policy: Policy, desired: Desired, now: datetime) -> str | None:
        if id(policy) not in self.reasons:
            self.reasons[id(policy)] = gates.policy_reason(policy, desired, now)
        return self.reasons[id(policy)]

    def forget_verdicts(self) -> None:
        """Start a new plan: verdicts depend on the commit's approvals and on ``now``."""
        self.verdicts.clear()
        self.reasons.clear()

    def command(
        self, doc: Document, action: str, text: str, digest: str, reason: str
    ) -> signed.Command:
        """The command for ``doc``, built once however many planes receive it."""
        commands = self.memo(doc).commands
        key = (digest, action, reason)
        if key not in commands:
            commands[key] = _command(
                f"{doc.KIND}/{doc.name}@{digest[7:19]}", action, (doc.KIND, doc.name), text, reason
            )
        return commands[key]

    @classmethod
    def of(cls, documents: Sequence[Document]) -> Index:
        """Group once per plan: selectors are matched per plane, documents are not."""
        keys: dict[SelectorKey, int] = {}
        selectors: list[LabelSelector] = []
        groups: list[list[_Member]] = []
        unselected: dict[str, _Member] = {}
        for doc in documents:
            selector = doc.plane_selector
            if doc.KIND in ORDER and selector is not None:
                key = _selector_key(selector)
                if key not in keys:
                    keys[key] = len(selectors)
                    selectors.append(selector)
                    groups.append([])
                groups[keys[key]].append(_member(doc))
            elif isinstance(doc, Model):
                unselected[doc.metadata.name] = _member(doc)
        for group in groups:
            group.sort()
        uses = tuple(
            frozenset(m[3].spec.model.name for m in group if isinstance(m[3], Deployment))
            for group in groups
        )
        policies = tuple(d for d in documents if isinstance(d, Policy))
        return cls(tuple(selectors), tuple(map(tuple, groups)), uses, unselected, policies)

    def targets(self, labels: dict[str, str]) -> tuple[list[Document], dict[str, Document]]:
        """Resources for a plane with ``labels``, in dependency order, plus the models they use;
        and the same by ``Kind/name``."""
        matched = [i for i, selector in enumerate(self.selectors) if selector.matches(labels)]
        used = frozenset().union(*(self.uses[i] for i in matched))
        models = sorted(self.unselected[n] for n in used if n in self.unselected)
        members = list(heapq.merge(*(self.groups[i] for i in matched), models))
        return [m[3] for m in members], {m[2]: m[3] for m in members}

    def plane_verdicts(
        self, policies: PlanePolicies, desired: Desired, now: datetime
    ) -> dict[str, str | None]:
        """Per kind, the policy gate a change fails on a plane under ``policies``."""
        return {kind: self.policy_block(kind, policies, desired, now) for kind in ORDER}


_Member = tuple[int, str, str, Document]
"""A resource's place in dependency order (kind, name), its ``Kind/name``, and itself."""


def _member(doc: Document) -> _Member:
    name = doc.metadata.name
    return (ORDER.index(doc.KIND), name, f"{doc.KIND}/{name}", doc)


def plan_plane_with(
    plane: DataPlane, desired: Desired, recorded: RecordedPlane, now: datetime, index: Index
) -> PlanePlan:
    """One plane's ordered actions, deciding with ``index`` (built once for every plane)."""
    targets, context = plane_context(plane, desired, recorded, now, index)
    actions = [a for doc in targets if (a := action(doc, context)) is not None]
    actions += list(deletions(plane, targets, recorded))
    labels = dict(plane.metadata.labels)
    return PlanePlan(plane.name, plane.spec.runtime, labels, tuple(actions), recorded.summary)


def plane_context(
    plane: DataPlane, desired: Desired, recorded: RecordedPlane, now: datetime, index: Index
) -> tuple[list[Document], Context]:
    """The resources ``plane`` selects, in plan order, and what deciding them needs."""
    labels = plane.metadata.labels
    targets, refs = index.targets(labels)
    policies = index.plane_policies(labels)
    verdicts = index.plane_verdicts(policies, desired, now)
    over = over_capacity(plane, targets, recorded)
    return targets, Context(plane, desired, recorded, policies, verdicts, now, refs, index, over)


def demand(doc: Deployment) -> int:
    """The replicas a deployment may run: its ``replicas``, or what autoscaling may scale it
    up to (a rollout's surge and the local runtime's warm standby are transient, not counted)."""
    if doc.spec.autoscaling is not None:
        return doc.spec.autoscaling.max_replicas
    return doc.spec.replicas or 0


Over = tuple[int, int]
"""Why a deployment does not fit: ``(0, 0)`` past ``maxDeployments``; else the replicas it
needs and those left under ``maxReplicas`` (:func:`capacity_reason` puts it in words)."""
_TAKEN: Over = (0, 0)


def over_capacity(
    plane: DataPlane, targets: Sequence[Document], recorded: RecordedPlane
) -> dict[str, Over]:
    """The deployments that do not fit ``plane``'s ``spec.capacity``, with why.

    Like a Kubernetes ResourceQuota, capacity admits and never evicts: deployments already
    issued to the plane are counted first, then new ones by name, and each one that would
    take the plane past ``maxDeployments`` or ``maxReplicas`` is blocked (a new one is not
    created; a changed one keeps running as last applied). One already issued counts
    even when blocked: it may still be running. A plane holds thousands: one pass, and
    the words only for the actions that show them.
    """
    capacity = plane.spec.capacity
    most, top = capacity.max_deployments, capacity.max_replicas
    if most is None and top is None:
        return {}
    issued = recorded.issued
    entries: list[tuple[bool, str, int]] = []  # (new, name, demand): sorted, running first
    for doc in targets:
        if isinstance(doc, Deployment):
            name = doc.metadata.name
            found = issued.get(("Deployment", name))
            entries.append((found is None or found.action == "delete", name, demand(doc)))
    entries.sort()
    count = replicas = 0
    over: dict[str, Over] = {}
    for new, name, wants in entries:
        if most is not None and count >= most:
            over[name] = _TAKEN
        elif top is not None and replicas + wants > top:
            over[name] = (wants, max(top - replicas, 0))
        else:  # it fits: admitted
            count, replicas = count + 1, replicas + wants
            continue
        if not new:  # blocked, but it may still be running: it counts
            count, replicas = count + 1, replicas + wants
    return over


def capacity_reason(plane: DataPlane, why: Over) -> str:
    """:func:`over_capacity`'s verdict in words."""
    capacity = plane.spec.capacity
    where = f"over DataPlane/{plane.name} capacity"
    if why == _TAKEN:
        return (
            f"{where}: its {capacity.max_deployments} deployment(s) "
            "(spec.capacity.maxDeployments) are taken"
        )
    wants, left = why
    return (
        f"{where}: needs {wants} replica(s), {left} of {capacity.max_replicas} "
        "(spec.capacity.maxReplicas) left"
    )


@dataclass(frozen=True)
class Context:
    """What deciding a resource on one plane needs."""

    plane: DataPlane
    desired: Desired
    recorded: RecordedPlane
    policies: PlanePolicies
    verdicts: Mapping[str, str | None]
    """Per kind, the policy gate a change fails here (``Index.plane_verdicts``)."""
    now: datetime
    targets: dict[str, Document]
    index: Index
    over: Mapping[str, Over] = field(default_factory=dict)
    """Deployments past the plane's capacity, with why (:func:`over_capacity`)."""


def action(doc: Document, context: Context) -> Action | None:
    """The action for ``doc``; shared between planes when nothing plane-specific differs."""
    key = _memo_key(doc, context)
    if key is None:
        return _decide(doc, context)
    actions = context.index.memo(doc).actions
    if key not in actions:
        actions[key] = _decide(doc, context)
    return actions[key]


def _memo_key(doc: Document, context: Context) -> tuple[object, ...] | None:
    """A key for actions that depend only on the document and its policy verdict here: the
    plane recorded nothing about it or what it depends on (a fleet's first reconcile)."""
    recorded = context.recorded
    if (recorded.issued or recorded.observed) and any(
        k in recorded.issued or k in recorded.observed for k in context.index.dependencies(doc)
    ):
        return None
    if isinstance(doc, Deployment):
        model_here = f"Model/{doc.spec.model.name}" in context.targets
        why = context.over.get(doc.name)  # in words naming its plane: not shared then
        over = None if why is None else (context.plane.name, why)
        return (context.verdicts[doc.KIND], model_here, over)
    return (context.verdicts[doc.KIND], None, None)


def _dependencies(doc: Document) -> list[Key]:
    keys: list[Key] = [(doc.KIND, doc.name)]
    if isinstance(doc, Deployment):
        keys.append(("Model", doc.spec.model.name))
    if isinstance(doc, Deployment | DAG):
        keys += [("FeatureSet", name) for name in doc.spec.feature_sets]
    return keys


def _decide(doc: Document, context: Context) -> Action | None:
    key: Key = (doc.KIND, doc.name)
    declared, text, source = context.index.declared(doc, context.desired)
    said = text
    gate = _gate(doc, context)
    if isinstance(gate, gates.Gate):
        return Action(gate.op, doc.KIND, doc.name, gate.reason, source=source, declared=said)
    refused = gates.unsupported(doc, context.recorded)
    if refused is not None:  # the plane would have to ignore part of it: nothing is sent
        return Action("blocked", doc.KIND, doc.name, refused, source=source, declared=said)
    digest = source
    if gate:  # references pinned for this plane: a plane-specific spec
        text = spec_json({**declared, **gate})
        digest = gates.digest(text)
    issued = context.recorded.issued.get(key)
    if issued is not None and issued.digest == digest and issued.action != "delete":
        failed = gates.failed(issued, context.recorded.observed.get(key))
        if failed is None:
            return None
        return Action(failed.op, doc.KIND, doc.name, failed.reason, source=source, declared=said)
    op, reason = _op(doc, issued)
    blocked = context.verdicts[doc.KIND]
    if blocked:
        return Action("blocked", doc.KIND, doc.name, blocked, source=source, declared=said)
    action = "build" if isinstance(doc, Model) else "apply"
    command = context.index.command(doc, action, text, digest, reason)
    changed = fielddiff.changes(issued.spec, text) if issued and issued.action != "delete" else ()
    return Action(op, doc.KIND, doc.name, reason, command, source, said, changed)


def _op(doc: Document, issued: Issued | None) -> tuple[Op, str]:
    if isinstance(doc, Model):
        version = doc.spec.version
        if issued is None or issued.action == "delete":
            return "build", f"build version {version}"
        return "build", f"rebuild: version {version} or its build inputs changed"
    if issued is None or issued.action == "delete":
        return "create", "new in git"
    return "update", "spec changed in git"


def _declared(doc: Document, desired: Desired) -> dict[str, object]:
    """The fields the document declares, plus the tree ids of the projects it builds or runs:
    a change to a project's code changes the resource, a commit elsewhere does not."""
    body: dict[str, object] = {
        "apiVersion": "gitplane.dev/v1alpha1",
        "kind": doc.KIND,
        "metadata": doc.metadata.model_dump(by_alias=True, exclude_unset=True),
        "spec": doc.spec.model_dump(by_alias=True, exclude_unset=True),  # type: ignore[attr-defined]
    }
    projects = projects_of(doc)
    if projects:
        body["inputs"] = {path: desired.inputs.get(path, "") for path in projects}
    return body


def plan_inputs(documents: Sequence[Document]) -> list[str]:
    """Every project directory whose tree id ``Desired.inputs`` must carry."""
    return sorted({path for doc in documents for path in projects_of(doc)})


def _gate(doc: Document, context: Context) -> dict[str, object] | gates.Gate:
    """What the plane needs resolved (a pinned model), or why it cannot go out yet."""
    resolved: dict[str, object] = {}
    if isinstance(doc, Deployment) and (why := context.over.get(doc.name)) is not None:
        issued = context.recorded.issued.get((doc.KIND, doc.name))
        running = issued is not None and issued.action != "delete"
        full = capacity_reason(context.plane, why)
        return gates.Gate("blocked", full + ("; it keeps running as last applied" * running))
    if isinstance(doc, Deployment):
        pinned = gates.pin_model(doc, context.targets, context.recorded)
        if isinstance(pinned, gates.Gate):
            return pinned
        model = f"Model/{doc.spec.model.name} {pinned.version}"
        status = context.recorded.observed.get(("Model", doc.spec.model.name))
        insecure = gates.security_block(model, status, context.policies.items)
        if insecure:
            return gates.Gate("blocked", insecure)
        resolved.update(commands.resolved(pinned))
    if isinstance(doc, Deployment | DAG):
        waiting = gates.feature_sets_ready(doc.spec.feature_sets, context.recorded)
        if waiting:
            return gates.Gate("wait", waiting)
    return resolved


def deletions(
    plane: DataPlane, targets: Sequence[Document], recorded: RecordedPlane
) -> Iterator[Action]:
    """Deletes (prunes) of what was issued to ``plane`` and git no longer selects for it,
    in reverse dependency order; blocked when the plane does not prune."""
    if not recorded.issued:
        return
    wanted = {(d.KIND, d.name) for d in targets}
    gone = [
        k for k, issued in recorded.issued.items() if issued.action != "delete" and k not in wanted
    ]
    for kind, name in sorted(gone, key=lambda k: (-ORDER.index(k[0]), k[1])):
        if not plane.spec.sync.prune:
            yield Action(
                "blocked",
                kind,
                name,
                "removed from git, but pruning is off for this "
                "plane (spec.sync.prune: false): delete it by hand or enable pruning",
            )
            continue
        text = spec_json({"kind": kind, "name": name})
        command = _command(
            f"{kind}/{name}@delete", "delete", (kind, name), text, "removed from git"
        )
        yield Action("delete", kind, name, "removed from git (pruning is on)", command)


def _command(command_id: str, action: str, key: Key, text: str, reason: str) -> signed.Command:
    return new_command(key[0], key[1], text, action=action, command_id=command_id, reason=reason)
