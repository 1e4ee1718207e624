"""The Kubernetes-style envelope every spec document shares."""

from __future__ import annotations

from typing import ClassVar

from schemas.common import LabelSelector, Metadata, Strict


class Document(Strict):
    """``apiVersion``, ``kind``, ``metadata`` and a kind-specific ``spec``."""

    KIND: ClassVar[str]

    metadata: Metadata

    @property
    def name(self) -> str:
        """The document's ``metadata.name``."""
        return self.metadata.name

    @property
    def plane_selector(self) -> LabelSelector | None:
        """Which data planes this document applies to; None for planes themselves."""
        return getattr(getattr(self, "spec", None), "plane_selector", None)

    @property
    def ref(self) -> str:
        """``Kind/name``, how people and the CLI name a resource."""
        return f"{self.KIND}/{self.metadata.name}"
