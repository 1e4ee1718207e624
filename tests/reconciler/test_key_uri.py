"""``gitplane reconcile --key-uri ROLE=URI``: the online keys sign through securesystemslib
(a KMS in production; here its ``file2:`` scheme, which works offline), and a URI whose key
root does not name is refused before anything is signed or pushed."""

from __future__ import annotations

import re
import subprocess
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import click
import pytest

from cli import options
from ledger import keyring, keys
from reconciler import reconcile as reconciling
from schemas.errors import UsageError
from tests import clock
from tests.conftest import git
from tests.reconciler.conftest import NOW, TestAgent, World


def _move_online_keys(world: World) -> dict[str, str]:
    """Take the reconciler's key files out of the keys directory (as if they lived in a KMS);
    return the ``file2:`` URI of each."""
    kms = world.root / "kms"
    kms.mkdir()
    uris = {}
    for role in keyring.ONLINE_ROLES:
        moved = (world.keys_dir / "reconciler" / f"{role}.key").rename(kms / f"{role}.key")
        uris[role] = f"file2:{moved}"
    return uris


def _remote_refs(world: World) -> str:
    return git(world.root, "ls-remote", world.remote)


def test_a_cycle_signs_through_key_uris_and_the_plane_verifies_it(world: World) -> None:
    uris = _move_online_keys(world)
    reconciler = reconciling.Reconciler(
        reconciling.Settings(
            repo=world.remote, keys_dir=world.keys_dir, work_dir=world.root / "r", key_uris=uris
        )
    )
    assert all(isinstance(s, keys.UriSigner) for s in reconciler.log.commands_signers)
    cycle = reconciler.reconcile(NOW)
    assert not cycle.problems
    assert cycle.issued["local-dev"].sequence == 1
    assert TestAgent(world, "local-dev").sync(), "the plane verified and read no command"


def test_a_key_uri_of_a_key_root_does_not_name_is_refused_and_nothing_is_pushed(
    world: World, tmp_path: Path
) -> None:
    uris = _move_online_keys(world)
    stranger = tmp_path / "stranger.key"
    keys.FileSigner.generate().save(stranger)
    before = _remote_refs(world)
    settings = reconciling.Settings(
        repo=world.remote,
        keys_dir=world.keys_dir,
        work_dir=world.root / "r",
        key_uris={**uris, "timestamp": f"file2:{stranger}"},
    )
    with pytest.raises(
        UsageError,
        match=r"cannot sign timestamp .* does not match .* timestamp key that root version 1 \(",
    ):
        reconciling.Reconciler(settings)
    assert _remote_refs(world) == before


def test_the_cli_signs_through_key_uris(world: World, gitplane_bin: str) -> None:
    uris = _move_online_keys(world)
    done = subprocess.run(
        [gitplane_bin, "reconcile", "--repo", world.remote, "--keys", str(world.keys_dir),
         "--work-dir", str(world.root / "r"),
         *(f"--key-uri={role}={uri}" for role, uri in uris.items())],
        capture_output=True, text=True, check=False, timeout=120, env=clock.env_at(NOW),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "issued bundle 1 to local-dev" in done.stdout


def test_a_role_rotated_to_a_kms_key_signs_through_its_uri(world: World, tmp_path: Path) -> None:
    reconciling.Reconciler(world.settings()).reconcile(NOW)
    agent = TestAgent(world, "local-dev")
    assert agent.sync()  # pinned to root v1, at bundle 1
    kms = keys.FileSigner.generate()
    kms.save(tmp_path / "kms.key")
    keyring.rotate_keys(
        world.keys_dir, roles={"commands"}, root_keys=None, threshold=None, now=NOW,
        lifetime=timedelta(days=30), public_keys={"commands": kms.public_key},
    )  # fmt: skip
    assert not (world.keys_dir / "reconciler" / "commands.key").exists()
    world.change("scale", _scale_churn_dev)
    settings = world.settings()
    uris = {"commands": f"file2:{tmp_path / 'kms.key'}"}
    reconciler = reconciling.Reconciler(replace(settings, key_uris=uris))
    assert reconciler.reconcile(NOW).issued["local-dev"].sequence == 2
    assert agent.sync(), "the plane did not follow root v2 to the KMS-signed bundle"


def test_a_public_key_for_a_role_not_rotated_is_refused(world: World) -> None:
    before = (world.keys_dir / keyring.ROOT_FILE).read_bytes()
    with pytest.raises(
        UsageError, match=re.escape("--public-key timestamp=... needs --role timestamp")
    ):
        keyring.rotate_keys(
            world.keys_dir, roles={"commands"}, root_keys=None, threshold=None, now=NOW,
            lifetime=timedelta(days=30),
            public_keys={"timestamp": keys.FileSigner.generate().public_key},
        )  # fmt: skip
    assert (world.keys_dir / keyring.ROOT_FILE).read_bytes() == before


def _scale_churn_dev(work: Path) -> None:
    path = work / "deployments" / "churn-dev.yaml"
    path.write_text(path.read_text().replace("maxReplicas: 4", "maxReplicas: 5"))


@pytest.mark.parametrize(
    ("values", "says"),
    [
        (("file2:/k",), "give ROLE=URI"),
        (("root=file2:/k",), "give ROLE=URI, ROLE being commands or timestamp"),
        (("commands=",), "give ROLE=URI"),
        (("commands=file2:/a", "commands=file2:/b"), "commands is given twice"),
    ],
    ids=["no-role", "not-an-online-role", "no-uri", "twice"],
)
def test_bad_key_uri_values_are_refused(values: tuple[str, ...], says: str) -> None:
    with pytest.raises(click.BadParameter, match=re.escape(says)):
        options.key_uris(click.Context(click.Command("reconcile")), click.Option(["-k"]), values)


@pytest.mark.parametrize(
    ("values", "says"),
    [
        (("commands=abc",), "commands: a public key is 64 lower-case hex digits"),
        (("commands=" + "00" * 32,), "commands: "),
        (("root=" + "ab" * 32,), "give ROLE=HEX, ROLE being commands or timestamp"),
    ],
    ids=["short", "small-order", "root"],
)
def test_bad_public_key_values_are_refused(values: tuple[str, ...], says: str) -> None:
    with pytest.raises(click.BadParameter, match=re.escape(says)):
        options.public_keys(click.Context(click.Command("rotate")), click.Option(["-p"]), values)


def test_a_key_uri_naming_no_key_says_why(world: World) -> None:
    with pytest.raises(
        UsageError, match=r"cannot sign commands through the key URI file2:...: .*not found"
    ):
        keyring.load_reconciler_signers(
            world.keys_dir, uris={"commands": f"file2:{world.root}/none"}
        )
