"""Sign with ``ssh-keygen -Y sign``: the one place Gitplane runs ``ssh-keygen``.

Signing uses the key material approvers already have: a private key file, or a public
key file whose private half is in ``ssh-agent`` (``ssh-keygen`` asks the agent then).
Verification never runs ``ssh-keygen``: :mod:`ledger.sshsig` does it in process.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from schemas.errors import GitplaneError

TIMEOUT = 60.0
"""Seconds: an agent may ask for confirmation (``ssh-add -c``) or a PIN."""


class SignError(GitplaneError):
    """``ssh-keygen`` could not sign (no such key, agent refused, not installed)."""


def sign(message: bytes, *, key: Path, namespace: str) -> str:
    """The armored ``SSHSIG`` signature of ``message`` by ``key`` in ``namespace``."""
    args = ["ssh-keygen", "-q", "-Y", "sign", "-n", namespace, "-f", str(key)]
    try:
        done = subprocess.run(
            args, input=message, capture_output=True, timeout=TIMEOUT, check=False
        )
    except FileNotFoundError:
        raise SignError("ssh-keygen is not installed (OpenSSH 8.2 or later is needed)") from None
    except subprocess.TimeoutExpired:
        raise SignError(f"ssh-keygen did not sign within {TIMEOUT:.0f}s") from None
    if done.returncode != 0:
        detail = done.stderr.decode(errors="replace").strip() or f"exit {done.returncode}"
        raise SignError(f"ssh-keygen could not sign with {key}: {detail}")
    return done.stdout.decode()
