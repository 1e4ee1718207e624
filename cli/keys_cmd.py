"""``gitplane keys``: create the root of trust, the reconciler's keys and agent keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from ledger import keyring

DIR = click.option(
    "--dir",
    "directory",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory to write the keys into.",
)


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
@click.option("--expires-days", default=365, show_default=True, help="Lifetime of root v1.")
def init(directory: Path, root_keys: int, threshold: int, expires_days: int) -> None:
    """Create a root of trust (k of n offline keys) and the reconciler's online keys."""
    ring = keyring.init_keys(
        directory,
        root_keys=root_keys,
        threshold=threshold,
        now=datetime.now(UTC),
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
@click.option("--plane", required=True, help="The DataPlane's metadata.name.")
def agent(directory: Path, plane: str) -> None:
    """Create a plane's agent key and print what to paste into its DataPlane spec."""
    key = keyring.create_agent_key(directory, plane)
    click.echo(f"# wrote {directory / 'agents' / (plane + '.key')} (keep it on the data plane)")
    click.echo("# paste into the DataPlane spec of " + plane + ":")
    click.echo(f"  agentKey:\n    type: ed25519\n    public: {key.hex}")
