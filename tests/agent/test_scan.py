"""The model scanner: formats by content, every file accounted for, nothing deserialised."""

from __future__ import annotations

import io
import os
import pickle
import struct
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import skops.io

from agent.runtimes.local.models import scan
from schemas.model import SEVERITIES

EVIL = b"cos\nsystem\n(S'echo pwned'\ntR."  # os.system("echo pwned"), protocol 0: ASCII


def _npy() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.arange(3))
    return buffer.getvalue()


def _zip(**members: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        pytest.param(EVIL, "pickle", id="protocol-0-pickle-is-not-text"),
        pytest.param(pickle.dumps({"a": 1}, protocol=5), "pickle", id="protocol-5-pickle"),
        pytest.param(b'{"flavors": {}}', "text", id="json"),
        pytest.param(b"artifact_path: model\nflavors: {}\n", "text", id="yaml"),
        pytest.param(_npy(), "numpy", id="npy"),
        pytest.param(skops.io.dumps({"a": 1}), "skops", id="skops"),
        pytest.param(_zip(**{"archive/data.pkl": EVIL}), "zip", id="torch-zip"),
        pytest.param(b"\x89HDF\r\n\x1a\n" + b"\0" * 64, "hdf5", id="hdf5"),
        pytest.param(struct.pack("<Q", 2) + b"{}" + b"\0" * 8, "safetensors", id="safetensors"),
        pytest.param(b"PAR1" + b"\x15\x00" * 8 + b"PAR1", "parquet", id="parquet"),
        pytest.param(b"{L\x00\x00\x00\x00\x00\x00\x00\x05learner{", "ubjson", id="xgboost-ubj"),
        pytest.param(b"\x08\x07\x12\x04onnx\xff\xfe", "binary", id="onnx-protobuf"),
        pytest.param(b"", "empty", id="empty"),
    ],
)
def test_a_format_is_recognised_by_content(data: bytes, kind: str) -> None:
    assert scan.recognise(data) == kind


def test_a_pickle_named_like_weights_is_scanned_as_a_pickle(tmp_path: Path) -> None:
    """picklescan picks files by extension: a pickle called weights.h5 went unscanned."""
    (tmp_path / "weights.h5").write_bytes(EVIL)
    (tmp_path / "MLmodel").write_text("flavors: {python_function: {}}\n")
    report = scan.scan(tmp_path, allow=[])
    assert [f.reference for f in report.findings] == ["os.system"]
    assert report.worst() == "CRITICAL" and report.blocks("HIGH")
    assert report.summary() == "pickle 1 (picklescan), text 1 (data only)"


def test_a_skops_file_is_held_to_the_policy_not_to_its_own_claims(tmp_path: Path) -> None:
    """MLflow loads a skops file trusting the types its MLmodel lists; the scan asks skops
    which types the file builds and grades them itself."""
    (tmp_path / "model.skops").write_bytes(skops.io.dumps({"f": os.system}))
    (tmp_path / "MLmodel").write_text(
        "flavors: {sklearn: {serialization_format: skops, skops_trusted_types: [posix.system]}}\n"
    )
    report = scan.scan(tmp_path, allow=[])
    assert [(f.reference, f.severity) for f in report.findings] == [("posix.system", "CRITICAL")]
    assert report.blocks("CRITICAL")
    assert not scan.scan(tmp_path, allow=["posix.system"]).blocks("LOW")


def test_an_sklearn_model_in_skops_passes_with_every_file_accounted_for(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415
    from sklearn.pipeline import make_pipeline  # noqa: PLC0415
    from sklearn.preprocessing import StandardScaler  # noqa: PLC0415

    model = make_pipeline(StandardScaler(), LogisticRegression())
    model.fit(np.arange(20.0).reshape(10, 2), [0, 1] * 5)
    (tmp_path / "model.skops").write_bytes(skops.io.dumps(model))
    (tmp_path / "requirements.txt").write_text("scikit-learn\n")
    report = scan.scan(tmp_path, allow=[])
    assert report.findings == () and not report.blocks("LOW")
    assert report.summary() == "skops 1 (skops), text 1 (data only)"


def test_a_file_no_scanner_understands_blocks_unless_allowed(tmp_path: Path) -> None:
    (tmp_path / "model.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    report = scan.scan(tmp_path, allow=[])
    assert report.unscanned == ("model.h5 (hdf5)",)
    assert report.blocks("CRITICAL")  # whatever the severity threshold
    assert not report.blocks("CRITICAL", allow_unscanned=True)
    assert report.reasons() == "unscanned model.h5 (hdf5)"


def test_modelscan_grades_a_pickle_named_like_weights_critical(tmp_path: Path) -> None:
    """modelscan picks its scanners by extension: it is shown the pickle as a pickle."""
    (tmp_path / "weights.h5").write_bytes(EVIL)
    (tmp_path / "MLmodel").write_text("flavors: {python_function: {}}\n")
    report = scan.scan(tmp_path, allow=[], tools=["modelscan"])
    assert [(f.reference, f.severity) for f in report.findings] == [("os.system", "CRITICAL")]
    assert report.error == "" and report.blocks("CRITICAL")
    assert report.summary() == "pickle 1 (modelscan), text 1 (data only)"


def test_a_clean_model_scanned_by_modelscan_passes(tmp_path: Path) -> None:
    from sklearn.linear_model import LinearRegression  # noqa: PLC0415

    model = LinearRegression().fit(np.arange(10.0).reshape(5, 2), np.arange(5.0))
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(model))
    (tmp_path / "requirements.txt").write_text("scikit-learn\n")
    report = scan.scan(tmp_path, allow=[], tools=["modelscan"])
    assert report.findings == () and report.error == "" and report.unscanned == ()
    assert not report.blocks("LOW")
    assert report.summary() == "pickle 1 (modelscan), text 1 (data only)"


def test_modelscan_grades_with_the_severities_of_the_spec() -> None:
    from modelscan.issues import IssueSeverity  # noqa: PLC0415

    assert tuple(s.name for s in sorted(IssueSeverity, key=lambda s: s.value)) == SEVERITIES


def test_allow_globals_lets_a_global_modelscan_found_through(tmp_path: Path) -> None:
    (tmp_path / "model.pkl").write_bytes(EVIL)
    assert not scan.scan(tmp_path, allow=["os.system"], tools=["modelscan"]).blocks("LOW")
    assert scan.scan(tmp_path, allow=["posix.system"], tools=["modelscan"]).blocks("CRITICAL")


@pytest.mark.parametrize(
    ("name", "data", "error"),
    [
        pytest.param(
            "model.pkl",
            b"\x80\x04\x95garbage",
            "modelscan could not scan model.pkl: Parsing error: ",
            id="a-broken-pickle",
        ),
        pytest.param(
            "model.h5",
            b"\x89HDF\r\n\x1a\n" + b"\0" * 64,
            "modelscan could not scan model.h5: To use modelscan.scanners.H5LambdaDetectScan, "
            "please install modelscan with h5py extras.",
            id="hdf5-on-a-plane-without-h5py",
        ),
        pytest.param(
            "weights.npy",
            _npy(),
            "modelscan could not scan weights.npy: module 'numpy.lib.format' has no attribute",
            id="npy-under-numpy-2-for-modelscan-0.8",
        ),
    ],
)
def test_a_file_modelscan_cannot_read_fails_the_scan(
    tmp_path: Path, name: str, data: bytes, error: str
) -> None:
    """Whatever else allows, a file modelscan could not read never passes (nor counts as
    scanned by it)."""
    (tmp_path / name).write_bytes(data)
    report = scan.scan(tmp_path, allow=[], tools=["modelscan"])
    assert report.error.startswith(error)
    assert report.unscanned == (f"{name} ({scan.recognise(data)})",)
    assert report.blocks("CRITICAL", allow_unscanned=True)


def test_an_exception_inside_modelscan_fails_the_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A simulated crash (``ModelScan.scan`` raising), named as such: no file is scanned."""
    from modelscan.modelscan import ModelScan  # noqa: PLC0415

    def crash(self: ModelScan, path: object) -> None:
        raise RuntimeError("simulated crash inside modelscan")

    monkeypatch.setattr(ModelScan, "scan", crash)
    (tmp_path / "model.pkl").write_bytes(pickle.dumps([1, 2, 3]))
    report = scan.scan(tmp_path, allow=[], tools=["modelscan"])
    assert report.error == "modelscan failed: RuntimeError: simulated crash inside modelscan"
    assert report.unscanned == ("model.pkl (pickle)",)
    assert report.blocks("CRITICAL", allow_unscanned=True)


def test_a_plane_without_modelscan_fails_the_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plane installed without modelscan (simulated: its import fails) never passes."""
    monkeypatch.setitem(sys.modules, "modelscan.modelscan", None)
    (tmp_path / "model.pkl").write_bytes(pickle.dumps([1, 2, 3]))
    report = scan.scan(tmp_path, allow=[], tools=["modelscan"])
    assert report.error.startswith("modelscan cannot run on this plane: ")
    assert report.blocks("CRITICAL", allow_unscanned=True)


def test_an_archive_modelscan_skipped_a_member_of_is_not_scanned_by_it(tmp_path: Path) -> None:
    """modelscan picks archive members by name: a PyTorch archive's raw tensor storage is
    skipped, so the archive is not scanned by modelscan; with picklescan asked too, it is
    scanned by picklescan (and both grade its pickle)."""
    (tmp_path / "model.pt").write_bytes(_zip(**{"archive/data.pkl": EVIL, "archive/data/0": b"1"}))
    alone = scan.scan(tmp_path, allow=[], tools=["modelscan"])
    assert [f.reference for f in alone.findings] == ["os.system"]
    assert alone.unscanned == ("model.pt (zip)",)
    both = scan.scan(tmp_path, allow=[], tools=["picklescan", "modelscan"])
    assert both.unscanned == () and both.summary() == "zip 1 (picklescan)"
    assert [f.reference for f in both.findings] == ["os.system", "os.system"]


def test_a_file_both_scanners_read_counts_for_each(tmp_path: Path) -> None:
    (tmp_path / "model.pkl").write_bytes(EVIL)
    report = scan.scan(tmp_path, allow=[], tools=["picklescan", "modelscan"])
    assert report.summary() == "pickle 1 (modelscan), pickle 1 (picklescan)"
    assert [(f.reference, f.severity) for f in report.findings] == [
        ("os.system", "CRITICAL"),
        ("os.system", "CRITICAL"),
    ]
