"""Every spec kind, by its ``kind`` string."""

from __future__ import annotations

from schemas.common import ProjectRef
from schemas.dag import DAG
from schemas.dataplane import DataPlane
from schemas.deployment import Deployment
from schemas.document import Document
from schemas.featureset import FeatureSet
from schemas.model import Model
from schemas.policy import Policy

KINDS: dict[str, type[Document]] = {
    cls.KIND: cls for cls in (DataPlane, Model, Deployment, FeatureSet, DAG, Policy)
}
Spec = DataPlane | Model | Deployment | FeatureSet | DAG | Policy


def project_refs(doc: Document) -> list[ProjectRef]:
    """The MLflow Projects ``doc`` builds (a Model) or runs (each DAG step), in order."""
    if isinstance(doc, Model) and doc.spec.source.project is not None:
        return [doc.spec.source.project]
    if isinstance(doc, DAG):
        return [step.project for step in doc.spec.steps]
    return []


def projects_of(doc: Document) -> list[str]:
    """The MLflow Project directories ``doc`` builds or runs, sorted, once each."""
    return sorted({ref.path for ref in project_refs(doc)})
