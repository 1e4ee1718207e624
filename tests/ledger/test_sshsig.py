"""``ledger.sshsig`` accepts what ``ssh-keygen -Y sign`` makes and refuses every alteration."""

from __future__ import annotations

import base64
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ledger import sshkeygen, sshsig
from schemas import sshkey
from tests.sshkeys import Key, make_key

NAMESPACE = "gitplane-approval"
MESSAGE = b'{"commit":"abc"}'
UNSUPPORTED = "unsupported-hash"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Key]:
    folder = tmp_path_factory.mktemp("keys")
    return {name: make_key(folder, name) for name in ("alice", "mallory")} | {
        "rsa": make_key(folder, "rsa", "rsa"),
        "ecdsa": make_key(folder, "ecdsa", "ecdsa"),
    }


@pytest.fixture(scope="module")
def armor(keys: dict[str, Key]) -> str:
    return sshkeygen.sign(MESSAGE, key=keys["alice"].path, namespace=NAMESPACE)


def test_accepts_ssh_keygen_signature(keys: dict[str, Key], armor: str) -> None:
    sshsig.verify(armor, MESSAGE, namespace=NAMESPACE, key=keys["alice"].public)
    assert sshsig.check(armor, MESSAGE, namespace=NAMESPACE) == keys["alice"].public


def test_signs_through_ssh_agent_with_the_public_key_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = make_key(tmp_path, "agent-held")
    socket = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(socket)], stdout=subprocess.DEVNULL)
    try:
        while not socket.exists():
            assert agent.poll() is None, "ssh-agent exited"
            time.sleep(0.01)
        env = {"SSH_AUTH_SOCK": str(socket)}
        subprocess.run(["ssh-add", "-q", str(key.path)], env=env, check=True, capture_output=True)
        public = key.public
        key.path.unlink()  # only the agent holds the private half now
        monkeypatch.setenv("SSH_AUTH_SOCK", str(socket))
        armor = sshkeygen.sign(MESSAGE, key=key.path.with_suffix(".pub"), namespace=NAMESPACE)
    finally:
        agent.terminate()
        agent.wait()
    sshsig.verify(armor, MESSAGE, namespace=NAMESPACE, key=public)


def _flip_signature_byte(blob: bytes) -> bytes:
    return blob[:-5] + bytes([blob[-5] ^ 1]) + blob[-4:]


def _rearmor(modify: Callable[[bytes], bytes]) -> Callable[[str], str]:
    def apply(armor: str) -> str:
        lines = armor.strip().splitlines()
        blob = modify(base64.b64decode("".join(lines[1:-1])))
        return "\n".join([lines[0], base64.b64encode(blob).decode(), lines[-1]])

    return apply


@pytest.mark.parametrize(
    ("modify", "message", "namespace", "reason"),
    [
        (lambda a: a, b'{"commit":"abd"}', NAMESPACE, "bad-signature"),
        (_rearmor(_flip_signature_byte), MESSAGE, NAMESPACE, "bad-signature"),
        (lambda a: a, MESSAGE, "git", "wrong-namespace"),
        (lambda a: a.replace("SIGNATURE", "SIG"), MESSAGE, NAMESPACE, "malformed"),
        (_rearmor(lambda b: b[:-1]), MESSAGE, NAMESPACE, "malformed"),
        (_rearmor(lambda b: b + b"x"), MESSAGE, NAMESPACE, "malformed"),
        (_rearmor(lambda b: b"SSHSIH" + b[6:]), MESSAGE, NAMESPACE, "malformed"),
        (lambda a: "x" * (sshsig.MAX_ARMOR + 1), MESSAGE, NAMESPACE, "malformed"),
        (_rearmor(lambda b: b.replace(b"sha512", b"sha384")), MESSAGE, NAMESPACE, UNSUPPORTED),
    ],
    ids=[
        "tampered-message",
        "tampered-signature",
        "wrong-namespace",
        "bad-armor",
        "truncated",
        "trailing-bytes",
        "bad-magic",
        "oversized",
        "unsupported-hash",
    ],
)
def test_refuses_alterations(  # noqa: PLR0917 -- one parameter per table column
    keys: dict[str, Key],
    armor: str,
    modify: Callable[[str], str],
    message: bytes,
    namespace: str,
    reason: str,
) -> None:
    with pytest.raises(sshsig.SshSigError) as refused:
        sshsig.verify(modify(armor), message, namespace=namespace, key=keys["alice"].public)
    assert refused.value.reason == reason


def test_refuses_another_key(keys: dict[str, Key], armor: str) -> None:
    with pytest.raises(sshsig.SshSigError) as refused:
        sshsig.verify(armor, MESSAGE, namespace=NAMESPACE, key=keys["mallory"].public)
    assert refused.value.reason == "wrong-key"
    assert keys["alice"].public.fingerprint in str(refused.value)


def test_a_key_swapped_into_the_signature_does_not_verify(keys: dict[str, Key], armor: str) -> None:
    alice, mallory = keys["alice"].public.blob, keys["mallory"].public.blob
    swapped = _rearmor(lambda b: b.replace(alice, mallory))(armor)
    with pytest.raises(sshsig.SshSigError) as refused:
        sshsig.verify(swapped, MESSAGE, namespace=NAMESPACE, key=keys["mallory"].public)
    assert refused.value.reason == "bad-signature"


@pytest.mark.parametrize("kind", ["rsa", "ecdsa"])
def test_refuses_unsupported_key_types(keys: dict[str, Key], kind: str) -> None:
    armor = sshkeygen.sign(MESSAGE, key=keys[kind].path, namespace=NAMESPACE)
    with pytest.raises(sshsig.SshSigError) as refused:
        sshsig.check(armor, MESSAGE, namespace=NAMESPACE)
    assert refused.value.reason == "unsupported-key"
    with pytest.raises(sshkey.UnsupportedKeyError):
        sshkey.parse(keys[kind].public_line)


def test_ssh_keygen_agrees(keys: dict[str, Key], armor: str, tmp_path: Path) -> None:
    signers = tmp_path / "allowed"
    signers.write_text(f"alice {keys['alice'].public_line}\n")
    (tmp_path / "sig").write_text(armor)
    args = ["ssh-keygen", "-Y", "verify", "-f", str(signers), "-I", "alice", "-n", NAMESPACE]
    done = subprocess.run(
        [*args, "-s", str(tmp_path / "sig")], input=MESSAGE, capture_output=True, check=False
    )
    assert done.returncode == 0, done.stderr
    fingerprint = subprocess.run(
        ["ssh-keygen", "-l", "-f", str(keys["alice"].path.with_suffix(".pub"))],
        capture_output=True,
        check=True,
        text=True,
    ).stdout.split()[1]
    assert keys["alice"].public.fingerprint == fingerprint


def test_sign_reports_a_missing_key(tmp_path: Path) -> None:
    with pytest.raises(sshkeygen.SignError, match="could not sign"):
        sshkeygen.sign(MESSAGE, key=tmp_path / "none", namespace=NAMESPACE)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("ssh-ed25519", "is 'ssh-ed25519"),
        ("ssh-ed25519 !!!", "does not decode"),
        ("ssh-ed25519 " + base64.b64encode(sshkey.string(b"ssh-ed25519")).decode(), "truncated"),
        (
            "ssh-ed25519 "
            + base64.b64encode(sshkey.string(b"ssh-ed25519") + sshkey.string(bytes(32))).decode(),
            "small-order",
        ),
    ],
    ids=["no-key", "bad-base64", "truncated", "small-order"],
)
def test_parse_refuses_bad_keys(line: str, message: str) -> None:
    with pytest.raises(sshkey.SshKeyError, match=message):
        sshkey.parse(line)
