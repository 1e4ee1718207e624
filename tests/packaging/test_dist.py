"""The release artefacts: ``python -m build`` makes a wheel and an sdist that ``twine check``
accepts, the wheel holds every package and nothing else, and it installs into a clean venv
whose ``gitplane --version`` is pyproject's version.

The build runs once per session on a copy of the files git tracks (so nothing is written into
the checkout and an untracked file cannot make the build pass), in pip's isolated build
environment, as a user's ``python -m build`` would. The clean venv gets its dependencies from
the package index with wheels only (pip's cache makes a second run take seconds).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT, git

pytestmark = pytest.mark.slow

PACKAGES = ("schemas", "ledger", "reconciler", "agent", "cli")
"""The top-level packages pyproject's ``packages.find`` includes."""
PACKAGE_DATA = ("schemas/json/*.json", "schemas/py.typed")
SDIST_NEEDS = ("pyproject.toml", "README.md", "LICENSE", *PACKAGE_DATA)


@dataclass(frozen=True)
class Dist:
    """What one build produced."""

    wheel: Path
    sdist: Path


def _version() -> str:
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])


def _tracked() -> list[str]:
    """The files git tracks, plus new ones it does not ignore (work in progress builds too)."""
    listed = git(ROOT, "ls-files", "--cached", "--others", "--exclude-standard", "-z")
    return [name for name in listed.split("\0") if name and (ROOT / name).is_file()]


def _run(*args: str | Path, cwd: Path | None = None) -> str:
    """Run a tool outside coverage: it measures only our packages, and tracing pip and the
    build backend would double their time."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, check=False, env=env
    )
    assert done.returncode == 0, f"{' '.join(map(str, args))}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Dist:
    """Build the wheel (from the sdist, as ``python -m build`` does) out of a copy of the tree."""
    work = tmp_path_factory.mktemp("build")
    source = work / "source"
    for name in _tracked():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    _run(sys.executable, "-m", "build", "--outdir", work / "dist", source)
    (wheel,) = (work / "dist").glob("*.whl")
    (sdist,) = (work / "dist").glob("*.tar.gz")
    return Dist(wheel, sdist)


def test_twine_accepts_the_wheel_and_the_sdist(dist: Dist) -> None:
    out = _run(sys.executable, "-m", "twine", "check", "--strict", dist.wheel, dist.sdist)
    assert out.count("PASSED") == 2


def test_the_wheel_holds_every_module_and_package_data_and_no_tests(dist: Dist) -> None:
    wanted = {
        name
        for name in _tracked()
        if name.split("/")[0] in PACKAGES
        and (name.endswith(".py") or any(Path(name).match(p) for p in PACKAGE_DATA))
    }
    with zipfile.ZipFile(dist.wheel) as wheel:
        inside = {n for n in wheel.namelist() if not n.split("/")[0].endswith(".dist-info")}
    assert inside == wanted
    assert any(n.startswith("schemas/json/") for n in inside)


def test_the_sdist_holds_what_the_wheel_is_built_from(dist: Dist) -> None:
    with tarfile.open(dist.sdist) as sdist:
        names = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    for pattern in SDIST_NEEDS:
        assert any(Path(n).match(pattern) for n in names), f"the sdist lacks {pattern}"


def test_the_wheel_installs_in_a_clean_venv_and_runs(dist: Dist, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    _run(
        sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install",
        "--quiet", "--only-binary", ":all:", dist.wheel,
    )  # fmt: skip
    out = _run(venv / "bin" / "gitplane", "--version", cwd=tmp_path)
    assert out.split()[-1] == _version()
    where = _run(venv / "bin" / "python", "-c", "import cli; print(cli.__file__)", cwd=tmp_path)
    assert Path(where.strip()).is_relative_to(venv), "gitplane ran from outside the venv"
