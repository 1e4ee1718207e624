"""``gitplane keys``: create the root of trust, the reconciler's keys and agent keys."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import click

from cli import clock, options
from ledger import gitrepo, keyring
from ledger import keys as signing
from reconciler import approving, planning

DIR = click.option(
    "--dir",
    "directory",
    required=True,
    type=options.GivenPath(file_okay=False, path_type=Path),
    help="Directory to write the keys into.",
)

WHO = gitrepo.Identity("gitplane-root", "root@gitplane.invalid")


@click.group()
def keys() -> None:
    """Create signing keys: the root of trust, the reconciler's, each agent's.

    See docs/security.md for roles, rotation and keeping keys in a KMS.
    """


@keys.command()
@DIR
@click.option("--root-keys", default=3, show_default=True, help="Number of offline root keys (n).")
@click.option(
    "--threshold", default=2, show_default=True, help="Root keys needed to sign a new root (k)."
)
@options.expires_days("Lifetime of root v1.")
def init(directory: Path, root_keys: int, threshold: int, expires_days: int) -> None:
    """Create a root of trust (k of n offline keys) and the reconciler's online keys."""
    ring = keyring.init_keys(
        directory,
        root_keys=root_keys,
        threshold=threshold,
        now=clock.now(),
        lifetime=timedelta(days=expires_days),
    )
    click.echo(
        f"root of trust: {ring.root_file} (version 1, {ring.threshold} of "
        f"{len(ring.root_keys)} root keys, expires {ring.expires:%Y-%m-%d})"
    )
    for key in ring.root_keys:
        click.echo(f"  root key      {key.keyid[:16]}")
    click.echo(f"  commands key  {ring.commands.keyid[:16]}  (online: the reconciler)")
    click.echo(f"  timestamp key {ring.timestamp.keyid[:16]}  (online: the reconciler)")
    click.echo(
        "\nNext:\n"
        f"  1. move {directory / 'root'}/ to offline storage: it is only needed to rotate keys\n"
        f"  2. install {ring.root_file} on every agent as its pinned root (rootFile)\n"
        f"  3. give the reconciler {directory / 'reconciler'}/ and {ring.root_file}"
    )


@keys.command()
@DIR
@click.option(
    "--plane", required=True, callback=options.plane_name, help="The DataPlane's metadata.name."
)
def agent(directory: Path, plane: str) -> None:
    """Create a plane's agent key and print what to paste into its DataPlane spec."""
    key = keyring.create_agent_key(directory, plane)
    click.echo(f"# wrote {directory / 'agents' / (plane + '.key')} (keep it on the data plane)")
    click.echo("# paste into the DataPlane spec of " + plane + ":")
    click.echo(f"  agentKey:\n    type: ed25519\n    public: {key.hex}")


@keys.command()
@DIR
@click.option(
    "--role",
    "roles",
    multiple=True,
    required=True,
    type=click.Choice(["commands", "timestamp", "root"]),
    help="Give this role new keys (repeatable).",
)
@click.option(
    "--public-key",
    "public_keys",
    multiple=True,
    metavar="ROLE=HEX",
    callback=options.public_keys,
    help="With --role ROLE (commands or timestamp): the new key is this Ed25519 public key "
    "(64 hex digits) of a key held elsewhere, such as Vault, that the reconciler signs through "
    "with --key-uri; no key file is written. Repeat for each role.",
)
@click.option("--root-keys", type=int, help="With --role root: how many new root keys (n).")
@click.option("--threshold", type=int, help="Root keys needed for the next rotation (k).")
@options.expires_days("Lifetime of the new root.")
def rotate(
    directory: Path,
    roles: tuple[str, ...],
    public_keys: dict[str, signing.PublicKey],
    root_keys: int | None,
    threshold: int | None,
    expires_days: int,
) -> None:
    """Replace keys through a new root version, signed by the old and the new root keys.

    The reconciler publishes the new root.json to the gitplane/root branch on its
    next cycle and signs with the new keys from then on; agents verify the chain
    from the root they pinned, so nothing has to be reinstalled. The old root
    keys must be online (in DIR/root/) for the rotation.
    """
    done = keyring.rotate_keys(
        directory,
        roles=set(roles),
        root_keys=root_keys,
        threshold=threshold,
        now=clock.now(),
        lifetime=timedelta(days=expires_days),
        public_keys=public_keys,
    )
    click.echo(
        f"root of trust: {directory / keyring.ROOT_FILE} (version {done.version}); "
        f"new keys for: {', '.join(done.replaced)}; previous root kept as {done.archived}"
    )
    click.echo(
        "\nNext:\n"
        "  1. restart the reconciler: it publishes the new root and signs with the new keys\n"
        "  2. nothing changes on the agents: they follow the signed chain from their pinned root"
    )


@keys.command()
@DIR
@options.spec_path
@click.option(
    "--rev", default="HEAD", show_default=True, help="The commit whose approval rule to pin."
)
@options.state_repo
def approvers(directory: Path, path: Path, rev: str, state_repo: str | None) -> None:
    """Pin the approval rule of a commit of PATH, signed by the root keys.

    Signed approvals count only under a rule the reconciler trusts: the first one is this
    anchor, signed by the threshold of root keys in DIR/root/ and published on the
    gitplane/root branch (docs/adr/0018-signed-approvals.md). Run it again to replace
    the approvers by root, without an approved commit.
    """
    done = approving.pin(directory, planning.PlanRequest(path, rev, None, None, state_repo), WHO)
    names = ", ".join(a.name for a in done.rule.approvers)
    click.echo(
        f"pinned the approval rule of {done.commit[:12]} as approvers anchor version "
        f"{done.version}: {names} (at least {done.rule.minimum})"
    )
    click.echo("the reconciler takes it on its next cycle")
