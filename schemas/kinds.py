"""Every spec kind, by its ``kind`` string."""

from __future__ import annotations

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
