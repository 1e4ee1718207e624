"""JSON Schema (draft 2020-12) of every spec kind, generated from the pydantic models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from schemas.common import API_VERSION
from schemas.kinds import KINDS

DEFAULT_DIR = Path(__file__).parent / "json"
BASE_URL = "https://gitplane.dev/schemas/v1alpha1"
DRAFT = "https://json-schema.org/draft/2020-12/schema"


def schema_of(kind: str) -> dict[str, Any]:
    """The JSON Schema of one kind, with ``$schema``, ``$id`` and a title."""
    body = KINDS[kind].model_json_schema(by_alias=True, mode="validation")
    head = {
        "$schema": DRAFT,
        "$id": f"{BASE_URL}/{kind.lower()}.json",
        "title": f"Gitplane {kind} ({API_VERSION})",
    }
    return {**head, **{k: v for k, v in body.items() if k != "title"}}


def render(kind: str) -> str:
    """The file content for one kind: stable key order, trailing newline."""
    return json.dumps(schema_of(kind), indent=2, ensure_ascii=False) + "\n"


def export(directory: Path, *, check: bool = False) -> list[Path]:
    """Write every kind's schema into ``directory``; return the files that changed.

    With ``check``, write nothing and return the files that are missing or stale.
    """
    changed = []
    for kind in KINDS:
        path = directory / f"{kind.lower()}.json"
        text = render(kind)
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            continue
        changed.append(path)
        if not check:
            directory.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    return changed
