"""The Dockerfile, checked as text: no container engine runs here, so the image itself is
never built in this suite (docs/kubernetes.md#images says so).

What can be known without building it is checked: two stages (a build stage making wheels,
a runtime stage installing them), bases pinned by version, a numeric non-root user, no
``ADD`` from a URL, no secret in an ``ARG`` or ``ENV``, git installed, the extras installed
being exactly those the runtimes need (``agent.runtimes.select.NEEDS``), every file it copies
present and let through ``.dockerignore``, and the entrypoint the Deployment relies on.
"""

from __future__ import annotations

import fnmatch
import importlib.metadata
import json
import re
import shlex
import tomllib
from dataclasses import dataclass
from functools import cache

from agent.runtimes import select
from tests.conftest import ROOT

UID = 10001
"""The agent's user and group in the image: the Deployment's runAsUser and fsGroup."""


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction: its keyword (upper case) and the rest of its line."""

    keyword: str
    value: str
    stage: int
    """Index of the FROM it follows (-1 before the first: global ARGs)."""


def parse(text: str) -> list[Instruction]:
    """Instructions with their continuation lines joined and comments dropped."""
    logical, pending = [], ""
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip().removesuffix("\\") + " "
        if not line.rstrip().endswith("\\"):
            logical.append(pending.strip())
            pending = ""
    found, stage = [], -1
    for line in logical:
        keyword, _, value = line.partition(" ")
        stage += keyword.upper() == "FROM"
        found.append(Instruction(keyword.upper(), value.strip(), stage))
    return found


@cache
def dockerfile() -> list[Instruction]:
    return parse((ROOT / "Dockerfile").read_text())


def _of(keyword: str, stage: int | None = None) -> list[Instruction]:
    return [i for i in dockerfile() if i.keyword == keyword and stage in (None, i.stage)]


def _global_args() -> dict[str, str]:
    pairs = (i.value.partition("=") for i in _of("ARG", -1))
    return {name: default for name, _, default in pairs}


def _stages() -> list[tuple[str, str]]:
    """(image, stage name) of each FROM, ARGs resolved."""
    found = []
    for instruction in _of("FROM"):
        image, _, name = instruction.value.partition(" AS ")
        for arg, default in _global_args().items():
            image = image.replace(f"${{{arg}}}", default)
        found.append((image, name.strip()))
    return found


def _last() -> int:
    return len(_stages()) - 1


def _version() -> str:
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])


def _extras_needed() -> set[str]:
    """The pyproject extras that provide every module some runtime needs at start."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    providers = importlib.metadata.packages_distributions()
    names = {
        extra: {re.split(r"[<>=!~\[; ]", spec)[0].lower() for spec in specs}
        for extra, specs in extras.items()
        if extra != "test"
    }
    needed = set()
    for modules in select.NEEDS.values():
        for module in modules:
            dists = {d.lower() for d in providers.get(module, [])}
            found = {extra for extra, declared in names.items() if dists & declared}
            assert found, f"NEEDS names {module}, which no extra of pyproject.toml provides"
            needed |= found
    return needed


def test_two_stages_a_build_then_a_runtime() -> None:
    assert [name for _, name in _stages()] == ["build", "runtime"]
    assert _of("COPY", _last()) == [], "the runtime stage copies nothing: no source tree"
    assert any("pip wheel" in i.value for i in _of("RUN", 0))


def test_base_images_are_pinned_by_version() -> None:
    for image, name in _stages():
        repository, _, tag = image.partition(":")
        assert repository and re.match(r"\d+\.\d+\.\d+", tag), f"{name}: {image} is not pinned"
        assert "$" not in image, f"{name}: {image} names an ARG with no default"


def test_the_runtime_user_is_numeric_and_not_root() -> None:
    users = _of("USER", _last())
    assert users, "the runtime stage sets no USER: it would run as root"
    user, _, group = users[-1].value.partition(":")
    assert user.isdigit() and group.isdigit(), f"USER {users[-1].value}: give numeric ids"
    assert int(user) == int(group) == UID
    assert f"--uid {UID}" in " ".join(i.value for i in _of("RUN", _last()))


def test_nothing_is_added_from_a_url_and_no_secret_is_baked() -> None:
    for instruction in _of("ADD"):
        assert "://" not in instruction.value, f"ADD {instruction.value}: fetch in a RUN, checked"
    for instruction in _of("ARG") + _of("ENV"):
        names = re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", instruction.value) or [instruction.value]
        for name in names:
            assert not re.search(r"KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL", name.upper()), (
                f"{instruction.keyword} {name}: secrets are mounted at run time, never built in"
            )


def test_the_extras_installed_are_the_ones_the_runtimes_need() -> None:
    runs = " ".join(i.value for i in _of("RUN"))
    installed = re.findall(r'(?:gitplane|\.)\[([a-z,]+)\]"', runs)
    assert len(installed) == 2, f"expected the build's wheels and the runtime's install: {runs}"
    for extras in installed:
        assert set(extras.split(",")) == _extras_needed(), (
            f"the image installs [{extras}]; agent.runtimes.select.NEEDS needs "
            f"[{','.join(sorted(_extras_needed()))}]"
        )


def test_git_is_installed_for_the_mirror() -> None:
    runs = [shlex.split(i.value) for i in _of("RUN", _last())]
    assert any("apt-get" in words and "git" in words for words in runs)


def test_the_entrypoint_and_command_the_deployment_relies_on() -> None:
    assert json.loads(_of("ENTRYPOINT", _last())[-1].value) == ["gitplane"]
    assert json.loads(_of("CMD", _last())[-1].value) == [
        "agent",
        "run",
        "--config",
        "/etc/gitplane/agent.yaml",
    ]


def test_oci_labels_name_the_version_of_the_package() -> None:
    labels = " ".join(i.value for i in _of("LABEL", _last()))
    for key in ("title", "description", "version", "licenses"):
        assert f"org.opencontainers.image.{key}=" in labels
    version = dict(i.value.partition("=")[::2] for i in _of("ARG", _last()))["VERSION"]
    assert version == _version(), "the image's VERSION ARG defaults to pyproject's version"


def _ignored(path: str) -> bool:
    """Whether .dockerignore keeps ``path`` out of the context (last match wins)."""
    ignored = False
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path, pattern) or path.startswith(f"{pattern}/"):
            ignored = not negated
    return ignored


def test_every_file_copied_exists_and_reaches_the_build_context() -> None:
    copies = [i for i in _of("COPY") if "--from=" not in i.value]
    assert copies
    for instruction in copies:
        *sources, _ = shlex.split(instruction.value)
        for source in sources:
            path = source.rstrip("/")
            assert (ROOT / path).exists(), f"COPY {source}: no such file in the repository"
            assert not _ignored(path), f"COPY {source}: .dockerignore leaves it out"


def test_dockerignore_keeps_keys_state_and_the_venv_out() -> None:
    for path in (".venv", ".git", "keys", "tests", ".gitplane-demo", "example-repo"):
        assert _ignored(path), f".dockerignore lets {path} into the build context"


def test_the_parser_reads_continuations_stages_and_comments() -> None:
    text = "ARG B=x:1.0\n# c\nFROM ${B} AS one\nRUN a \\\n    b\nFROM ${B} AS two\nUSER 1:1\n"
    found = parse(text)
    assert [(i.keyword, i.stage) for i in found] == [
        ("ARG", -1),
        ("FROM", 0),
        ("RUN", 0),
        ("FROM", 1),
        ("USER", 1),
    ]
    assert found[2].value == "a      b"
