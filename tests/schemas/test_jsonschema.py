"""The committed JSON Schema files: fresh, valid draft 2020-12, and agreeing with pydantic."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from schemas import _yaml, jsonschema_export
from schemas.kinds import KINDS
from tests.conftest import EXAMPLE_REPO, ROOT

SCHEMA_DIR = ROOT / "schemas" / "json"


def test_committed_schemas_are_not_stale() -> None:
    stale = jsonschema_export.export(SCHEMA_DIR, check=True)
    assert stale == [], "run `gitplane schema export` and commit schemas/json/"


def test_check_reports_a_stale_file_and_export_rewrites_it(tmp_path: Path) -> None:
    assert len(jsonschema_export.export(tmp_path)) == len(KINDS)
    (tmp_path / "model.json").write_text("{}\n")
    assert jsonschema_export.export(tmp_path, check=True) == [tmp_path / "model.json"]
    assert jsonschema_export.export(tmp_path) == [tmp_path / "model.json"]
    assert jsonschema_export.export(tmp_path, check=True) == []


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_schema_is_valid_draft_2020_12(kind: str) -> None:
    schema = json.loads((SCHEMA_DIR / f"{kind.lower()}.json").read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def _example_documents() -> list[tuple[str, dict[str, object]]]:
    docs = []
    for path in sorted(EXAMPLE_REPO.glob("*/*.yaml")):
        data, _ = _yaml.load(path.read_bytes())
        docs.append((path.relative_to(EXAMPLE_REPO).as_posix(), data))
    return docs


@pytest.mark.parametrize(("file", "document"), _example_documents(), ids=lambda v: str(v)[:40])
def test_example_specs_validate_against_their_json_schema(
    file: str, document: dict[str, object]
) -> None:
    schema = json.loads((SCHEMA_DIR / f"{str(document['kind']).lower()}.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(document)


def test_json_schema_and_pydantic_agree_on_an_unknown_field() -> None:
    schema = json.loads((SCHEMA_DIR / "deployment.json").read_text())
    document = next(dict(d) for _, d in _example_documents() if d["kind"] == "Deployment")
    document["spec"] = {**document["spec"], "replica": 3}  # type: ignore[dict-item]
    assert not jsonschema.Draft202012Validator(schema).is_valid(document)
    with pytest.raises(ValueError, match="replica"):
        KINDS["Deployment"].model_validate(document)


def test_every_example_spec_declares_its_schema_modeline() -> None:
    for path in EXAMPLE_REPO.glob("*/*.yaml"):
        first = path.read_text().splitlines()[0]
        kind = _yaml.load(path.read_bytes())[0]["kind"]
        assert first == f"# yaml-language-server: $schema=../../schemas/json/{kind.lower()}.json"
