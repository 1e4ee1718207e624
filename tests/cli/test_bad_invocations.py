"""Bad invocations of every command: one clear line, exit 1 or 2, never a traceback (exit 3
is for real bugs) and never a wrong exit 0.

One row per invocation: those issue 19 lists under "What was found" and its second pass
(kept, so that a regression is caught), then a wider pass of our own (empty strings, huge
and negative numbers, paths of the wrong kind, binary and non-UTF-8 files, symlinks to
/etc/passwd, missing repositories and ones with no commits). Rows run in this process
through ``cli.main.main`` (fast); only those where the process matters (its stdout's
encoding, its environment's NO_COLOR) run as a subprocess.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest

from cli import clock as cli_clock
from cli import main as cli_main
from ledger import keyring, keys
from tests.cli import invoke
from tests.conftest import EXAMPLE_REPO, commit_all, git, init_repo
from tests.reconciler.conftest import NOW


@dataclass(frozen=True)
class Case:
    """``gitplane ARGS`` in the sandbox (``{s}`` is its path): the exit code and a part of
    what it says. ``config`` is written to ``{config}`` first (an agent configuration)."""

    args: list[str]
    code: int
    says: str
    env: dict[str, str] = field(default_factory=dict)
    config: str = ""
    process: bool = False
    """Run as a subprocess: the process's streams or environment are what is tested."""


AGENT = "plane: local-dev\nrepo: {s}/specs\nrootFile: {s}/keys/root.json\nkeyFile: {s}/agent.key\n"
"""An agent configuration that would run, but for ``stateDir`` (each row adds its own)."""
GOOD_AGENT = AGENT + "stateDir: {s}/state\n"
NOT_A_DIR = "Not a directory: check the path and its permissions"
WORK = ["--work-dir", "{s}/work"]
RECONCILE = ["reconcile", "--repo", "{s}/specs", "--keys", "{s}/keys", *WORK]

FOUND = {
    # "What was found" in issue 19
    "reconciler-keys-not-the-roots": Case(
        ["reconcile", "--repo", "{s}/specs", "--keys", "{s}/keys-mixed", *WORK], 2,
        "commands.key is not a commands key of root version 1"),
    "agent-keyfile-missing": Case(
        ["agent", "run", "--config", "{config}", "--once"], 1,
        "none.key: cannot read the private key",
        config=GOOD_AGENT.replace("{s}/agent.key", "{s}/none.key")),
    "agent-keyfile-not-a-key": Case(
        ["agent", "run", "--config", "{config}", "--once"], 1, "afile: not an unencrypted PEM",
        config=GOOD_AGENT.replace("{s}/agent.key", "{s}/afile")),
    "agent-rootfile-missing": Case(
        ["agent", "run", "--config", "{config}", "--once"], 2, "none.json",
        config=GOOD_AGENT.replace("{s}/keys/root.json", "{s}/none.json")),
    "reconciler-keys-without-reconciler-keys": Case(
        ["reconcile", "--repo", "{s}/specs", "--keys", "{s}/keys-empty", *WORK], 1,
        "commands.key: cannot read the private key"),
    "schema-export-unwritable": Case(
        ["schema", "export", "--dir", "{s}/afile/schemas"], 2, NOT_A_DIR),
    "plan-latin-1-stdout": Case(
        ["plan", "{s}/specs"], 0, "...", env={"PYTHONIOENCODING": "latin-1"}, process=True),
    "validate-no-specs": Case(["validate", "{s}/nospecs"], 1, "no specs found"),
    "keys-init-expired": Case(
        ["keys", "init", "--dir", "{s}/new", "--expires-days", "-5"], 2, "--expires-days"),
    "keys-agent-escaping-plane": Case(
        ["keys", "agent", "--dir", "{s}/new", "--plane", "../../escaped"], 2,
        "is not a DataPlane name"),
    "agent-ports-99999-5": Case(
        ["agent", "run", "--config", "{config}", "--once"], 2, "runtime.ports",
        config=GOOD_AGENT + "runtime: {ports: 99999-5}\n"),
    "reconcile-once-watch": Case([*RECONCILE, "--once", "--watch"], 2, "not both"),
    # its second pass
    "listen-port-out-of-range": Case(
        [*RECONCILE, "--watch", "--listen", "127.0.0.1:99999"], 2, "not between 1 and 65535"),
    "reconcile-work-dir-a-file": Case([*RECONCILE[:5], "--work-dir", "{s}/afile"], 2, "is a file"),
    "reconcile-work-dir-unwritable": Case(
        [*RECONCILE[:5], "--work-dir", "{s}/afile/work"], 2, NOT_A_DIR),
    "agent-state-dir-a-file": Case(
        ["agent", "run", "--config", "{config}", "--once"], 2, "afile",
        config=AGENT + "stateDir: {s}/afile\n"),
    "agent-state-dir-unwritable": Case(
        ["agent", "run", "--config", "{config}", "--once"], 2, NOT_A_DIR,
        config=AGENT + "stateDir: {s}/afile/state\n"),
    "keys-init-dir-a-file": Case(["keys", "init", "--dir", "{s}/afile"], 2, "is a file"),
    "keys-init-dir-unwritable": Case(["keys", "init", "--dir", "{s}/afile/keys"], 2, NOT_A_DIR),
    "schema-docs-out-unwritable": Case(["schema", "docs", "--out", "{s}/afile/x.md"], 2, "afile"),
    "schema-docs-out-a-directory": Case(["schema", "docs", "--out", "{s}/adir"], 2,
                                        "is a directory"),
    "agent-rootfile-a-directory": Case(
        ["agent", "run", "--config", "{config}", "--once"], 2, "adir",
        config=GOOD_AGENT.replace("{s}/keys/root.json", "{s}/adir")),
    "expires-days-huge": Case(
        ["keys", "init", "--dir", "{s}/new", "--expires-days", str(10**12)], 2,
        "--expires-days"),
    "keys-agent-absolute-plane": Case(
        ["keys", "agent", "--dir", "{s}/new", "--plane", "/tmp/abs"], 2, "not a DataPlane name"),
    "keys-agent-empty-plane": Case(
        ["keys", "agent", "--dir", "{s}/new", "--plane", ""], 2, "not a DataPlane name"),
    "keys-agent-non-ascii-plane": Case(
        ["keys", "agent", "--dir", "{s}/new", "--plane", "pläne"], 2, "not a DataPlane name"),
    "keys-rotate-expired": Case(
        ["keys", "rotate", "--dir", "{s}/keys", "--role", "commands", "--expires-days", "-1"],
        2, "--expires-days"),
    "keys-rotate-root-keys-without-role-root": Case(
        ["keys", "rotate", "--dir", "{s}/keys", "--role", "commands", "--root-keys", "5"], 2,
        "--root-keys applies only with --role root"),
    "validate-latin-1-stdout": Case(
        ["validate", "{s}/specs"], 0, "OK", env={"PYTHONIOENCODING": "latin-1"}, process=True),
    "validate-no-color": Case(
        ["validate", "{s}/specs"], 0, "specs valid", env={"NO_COLOR": "1"}, process=True),
    # poor messages
    "root-a-pem-key": Case(
        ["status", "{s}/specs", "--root", "{s}/keys/reconciler/commands.key"], 2,
        "commands.key is not a root of trust"),
    "repo-with-no-commits": Case(["plan", "{s}/empty-repo"], 2, "no commits"),
    "unknown-rev": Case(["plan", "{s}/specs", "--rev", "nope"], 2, "nope"),
    "path-not-in-the-commit": Case(["validate", "{s}/specs/untracked"], 2, "untracked"),
    "agent-unknown-field": Case(
        ["agent", "run", "--config", "{config}", "--once"], 2, "did you mean 'pollInterval'",
        config=GOOD_AGENT + "pollIntervl: 5s\n"),
    # conventions
    "detailed-exitcode-usage-error": Case(
        ["plan", "{s}/specs", "--detailed-exitcode", "--bogus"], 1, "No such option"),
}  # fmt: skip

OURS = {
    "no-command": Case(["nope"], 2, "No such command"),
    "plan-not-a-repo": Case(["plan", "{s}/adir"], 2, "adir"),
    "plan-path-a-file": Case(["plan", "{s}/afile"], 2, "is a file"),
    "plan-missing-path": Case(["plan", "{s}/missing"], 2, "missing"),
    "plan-empty-rev": Case(["plan", "{s}/specs", "--rev", ""], 2, "has no commit ''"),
    "plan-bad-base": Case(["plan", "{s}/specs", "--base", "nope"], 2, "nope"),
    "plan-bad-output": Case(["plan", "{s}/specs", "-o", "yaml"], 2, "'yaml' is not one of"),
    "plan-root-missing": Case(["plan", "{s}/specs", "--root", "{s}/none.json"], 2,
                              "does not exist"),
    "plan-root-binary": Case(["plan", "{s}/specs", "--root", "{s}/bin.yaml"], 2,
                             "bin.yaml is not a root of trust"),
    "plan-root-etc-passwd": Case(["plan", "{s}/specs", "--root", "{s}/passwd.yaml"], 2,
                                 "passwd.yaml"),
    "plan-root-a-directory": Case(["plan", "{s}/specs", "--root", "{s}/adir"], 2,
                                  "is a directory"),
    "plan-root-empty": Case(["plan", "{s}/specs", "--root", "{s}/empty.json"], 2,
                            "empty.json is not a root of trust"),
    "plan-state-repo-missing": Case(
        ["plan", "{s}/specs", "--root", "{s}/keys/root.json", "--state-repo", "{s}/none.git"],
        1, "none.git"),
    "plan-root-empty-string": Case(["plan", "{s}/specs", "--root", ""], 2, "an empty path"),
    "plan-path-empty-string": Case(["plan", ""], 2, "an empty path"),
    "plan-root-from-env-missing": Case(
        ["plan", "{s}/specs"], 2, "GITPLANE_ROOT", env={"GITPLANE_ROOT": "{s}/none.json"}),
    "status-without-root": Case(["status", "{s}/specs"], 2, "Missing option '--root'"),
    "status-unknown-plane": Case(
        ["status", "{s}/specs", "--root", "{s}/keys/root.json", "--state-repo", "{s}/specs",
         "--plane", "mars"], 2, "mars"),
    "status-repo-with-no-commits": Case(
        ["status", "{s}/empty-repo", "--root", "{s}/keys/root.json"], 2, "no commits"),
    "status-unknown-rev": Case(
        ["status", "{s}/specs", "--root", "{s}/keys/root.json", "--rev", "nope"], 2, "nope"),
    "audit-bad-resource": Case(
        ["audit", "nonsense", "{s}/specs", "--root", "{s}/keys/root.json"], 2, "KIND/NAME"),
    "audit-empty-resource": Case(
        ["audit", "", "{s}/specs", "--root", "{s}/keys/root.json"], 2, "KIND/NAME"),
    "audit-unknown-kind": Case(
        ["audit", "gadget/x", "{s}/specs", "--root", "{s}/keys/root.json"], 2, "gadget"),
    "audit-bad-since": Case(
        ["audit", "model/churn", "{s}/specs", "--root", "{s}/keys/root.json", "--since",
         "\udcff"], 2, "--since"),
    "audit-repo-with-no-commits": Case(
        ["audit", "model/churn", "{s}/empty-repo", "--root", "{s}/keys/root.json"], 2, "main"),
    "audit-rev-and-branch": Case(
        ["audit", "model/churn", "{s}/specs", "--root", "{s}/keys/root.json", "--rev", "a",
         "--branch", "b"], 2, "keep --rev"),
    "validate-binary-spec": Case(["validate", "{s}/binspecs", "--worktree"], 1, "bin.yaml"),
    "validate-empty-rev": Case(["validate", "{s}/specs", "--rev", ""], 2, "an empty revision"),
    "validate-rev-and-worktree": Case(
        ["validate", "{s}/specs", "--rev", "HEAD", "--worktree"], 2, "not both"),
    "validate-not-a-repo-no-specs": Case(["validate", "{s}/adir"], 1, "no specs found"),
    "validate-repo-with-no-commits": Case(["validate", "{s}/empty-repo"], 2, "no commits"),
    "validate-worktree-empty-dir": Case(["validate", "{s}/adir", "--worktree"], 1,
                                        "no specs found"),
    "reconcile-no-repo": Case(["reconcile", "--keys", "{s}/keys"], 2, "Missing option '--repo'"),
    "reconcile-missing-repo": Case(
        ["reconcile", "--repo", "{s}/none.git", "--keys", "{s}/keys", *WORK], 1, "none.git"),
    "reconcile-empty-repo-string": Case(
        ["reconcile", "--repo", "", "--keys", "{s}/keys", *WORK], 2, "an empty value"),
    "reconcile-repo-with-no-commits": Case(
        ["reconcile", "--repo", "{s}/empty-repo", "--keys", "{s}/keys", *WORK], 2, "no branch"),
    "reconcile-unknown-branch": Case([*RECONCILE, "--branch", "nope"], 2, "no branch nope"),
    "reconcile-keys-a-file": Case(
        ["reconcile", "--repo", "{s}/specs", "--keys", "{s}/afile", *WORK], 2, "is a file"),
    "reconcile-bad-interval": Case([*RECONCILE, "--watch", "--interval", "soon"], 2, "soon"),
    "reconcile-negative-interval": Case([*RECONCILE, "--watch", "--interval", "-5s"], 2, "-5s"),
    "reconcile-zero-interval": Case(
        [*RECONCILE, "--watch", "--interval", "0s"], 2,
        "--interval 0s: expected between 1s and 7d"),
    "reconcile-huge-interval": Case(
        [*RECONCILE, "--watch", "--interval", f"{10**23}s"], 2, "expected between 1s and 7d"),
    "reconcile-interval-from-env-bad": Case(
        [*RECONCILE, "--watch"], 2, "--interval invalid duration 'abc'",
        env={"GITPLANE_INTERVAL": "abc"}),
    "reconcile-path-not-in-the-repo": Case(
        [*RECONCILE, "--path", "nonexist"], 2, "--path 'nonexist' is not a directory"),
    "reconcile-path-outside-the-repo": Case(
        [*RECONCILE, "--path", "../.."], 2, "--path '../..' is not a directory"),
    "schema-docs-out-a-full-disk": Case(
        ["schema", "docs", "--out", "/dev/full", "--support-out", "{s}/new/s.md"], 1,
        "No space left on device"),
    "agent-poll-interval-zero": Case(
        ["agent", "run", "--config", "{config}", "--once"], 2,
        "pollInterval: '0s': expected between 1s and 7d", config=GOOD_AGENT + "pollInterval: 0s\n"),
    "reconcile-empty-listen": Case([*RECONCILE, "--watch", "--listen", ""], 2, "--listen"),
    "reconcile-listen-port-0": Case(
        [*RECONCILE, "--watch", "--listen", "127.0.0.1:0"], 2, "not between 1 and 65535"),
    "reconcile-listen-not-a-number": Case(
        [*RECONCILE, "--watch", "--listen", "127.0.0.1:http"], 2, "--listen"),
    "reconcile-interval-from-env-with-flag-once": Case(
        [*RECONCILE, "--once", "--interval", "5s"], 2, "--interval applies only with --watch",
        env={"GITPLANE_INTERVAL": "5s"}),
    "agent-config-missing": Case(["agent", "run", "--config", "{s}/none.yaml"], 2,
                                 "does not exist"),
    "agent-config-a-directory": Case(["agent", "run", "--config", "{s}/adir"], 2,
                                     "is a directory"),
    "agent-config-binary": Case(["agent", "run", "--config", "{s}/bin.yaml", "--once"], 2,
                                "bin.yaml"),
    "agent-config-non-utf8": Case(["agent", "run", "--config", "{s}/latin.yaml", "--once"], 2,
                                  "latin.yaml"),
    "agent-config-etc-passwd": Case(
        ["agent", "run", "--config", "{s}/passwd.yaml", "--once"], 2, "passwd.yaml"),
    "agent-config-empty": Case(["agent", "run", "--config", "{config}", "--once"], 2,
                               "agent.yaml", config=""),
    "agent-config-a-list": Case(["agent", "run", "--config", "{config}", "--once"], 2,
                                "agent.yaml", config="- plane\n"),
    "agent-config-from-env-missing": Case(
        ["agent", "run", "--once"], 2, "GITPLANE_CONFIG",
        env={"GITPLANE_CONFIG": "{s}/none.yaml"}),
    "agent-plane-empty": Case(
        ["agent", "run", "--config", "{config}", "--once"], 2, "plane",
        config=GOOD_AGENT.replace("plane: local-dev", "plane: ''")),
    "agent-poll-interval-negative": Case(
        ["agent", "run", "--config", "{config}", "--once"], 2, "pollInterval",
        config=GOOD_AGENT + "pollInterval: -5s\n"),
    "agent-poll-interval-a-number": Case(
        ["agent", "run", "--config", "{config}", "--once"], 2, "pollInterval",
        config=GOOD_AGENT + "pollInterval: 5\n"),
    "agent-standby-replicas-huge": Case(
        ["agent", "run", "--config", "{config}", "--once"], 2, "runtime.standbyReplicas",
        config=GOOD_AGENT + f"runtime: {{standbyReplicas: {10**30}}}\n"),
    "agent-ports-not-a-range": Case(
        ["agent", "run", "--config", "{config}", "--once"], 2, "runtime.ports",
        config=GOOD_AGENT + "runtime: {ports: lots}\n"),
    "agent-repo-a-number": Case(
        ["agent", "run", "--config", "{config}", "--once"], 2, "repo",
        config=GOOD_AGENT.replace("repo: {s}/specs", "repo: 5")),
    "agent-old-and-new-repo": Case(
        ["agent", "run", "--config", "{config}", "--once"], 2, "keep repo",
        config=GOOD_AGENT + "remote: {s}/specs\n"),
    "agent-key-file-etc-passwd": Case(
        ["agent", "run", "--config", "{config}", "--once"], 1, "/etc/passwd: not an unencrypted",
        config=GOOD_AGENT.replace("{s}/agent.key", "{s}/passwd.yaml")),
    "agent-root-file-a-pem-key": Case(
        ["agent", "run", "--config", "{config}", "--once"], 2,
        "commands.key is not a root of trust",
        config=GOOD_AGENT.replace("{s}/keys/root.json", "{s}/keys/reconciler/commands.key")),
    "agent-listen-with-once": Case(
        ["agent", "run", "--config", "{config}", "--once", "--listen", ":1"], 2,
        "--listen applies only without --once", config=GOOD_AGENT),
    "keys-init-threshold-above-root-keys": Case(
        ["keys", "init", "--dir", "{s}/new", "--root-keys", "2", "--threshold", "3"], 2,
        "threshold"),
    "keys-init-zero-root-keys": Case(
        ["keys", "init", "--dir", "{s}/new", "--root-keys", "0"], 2, "root"),
    "keys-init-negative-threshold": Case(
        ["keys", "init", "--dir", "{s}/new", "--threshold", "-1"], 2, "threshold"),
    "keys-init-huge-root-keys": Case(
        ["keys", "init", "--dir", "{s}/new", "--root-keys", str(10**12)], 2, "root"),
    "keys-init-existing": Case(["keys", "init", "--dir", "{s}/keys"], 2, "already holds a root"),
    "keys-init-empty-dir-string": Case(["keys", "init", "--dir", ""], 2, "an empty path"),
    "reconcile-empty-work-dir": Case([*RECONCILE, "--work-dir", ""], 2, "an empty path"),
    "schema-export-empty-dir": Case(["schema", "export", "--dir", ""], 2, "an empty path"),
    "keys-agent-upper-case-plane": Case(
        ["keys", "agent", "--dir", "{s}/new", "--plane", "Prod"], 2, "not a DataPlane name"),
    "keys-agent-dir-a-file": Case(
        ["keys", "agent", "--dir", "{s}/afile", "--plane", "edge"], 2, "is a file"),
    "keys-agent-dir-unwritable": Case(
        ["keys", "agent", "--dir", "{s}/afile/k", "--plane", "edge"], 2, NOT_A_DIR),
    "keys-rotate-no-root": Case(
        ["keys", "rotate", "--dir", "{s}/adir", "--role", "commands"], 2, "root.json"),
    "keys-rotate-unknown-role": Case(
        ["keys", "rotate", "--dir", "{s}/keys", "--role", "admin"], 2, "'admin' is not one of"),
    "keys-rotate-root-without-root-keys": Case(
        ["keys", "rotate", "--dir", "{s}/keys", "--role", "root"], 2, "--root-keys"),
    "keys-rotate-threshold-zero": Case(
        ["keys", "rotate", "--dir", "{s}/keys", "--role", "commands", "--threshold", "0"], 2,
        "threshold"),
    "keys-rotate-root-json-binary": Case(
        ["keys", "rotate", "--dir", "{s}/keys-binary", "--role", "commands"], 2,
        "root.json is not a root of trust"),
    "schema-export-dir-a-file": Case(["schema", "export", "--dir", "{s}/afile"], 2, "is a file"),
    "schema-docs-support-out-a-directory": Case(
        ["schema", "docs", "--out", "{s}/new/specs.md", "--support-out", "{s}/adir"], 2,
        "is a directory"),
    "schema-export-check-missing-dir": Case(
        ["schema", "export", "--dir", "{s}/missing", "--check"], 1, "stale"),
    "agent-runtime-a-number": Case(
        ["agent", "run", "--config", "{config}", "--once"], 2, "runtime: unknown runtime type",
        config=GOOD_AGENT + "runtime: 5\n"),
    "agent-state-dir-a-number": Case(
        ["agent", "run", "--config", "{config}", "--once"], 2, "stateDir",
        config=AGENT + "stateDir: 5\n"),
    "agent-duplicate-key": Case(
        ["agent", "run", "--config", "{config}", "--once"], 2, "duplicate key 'rootFile'",
        config=GOOD_AGENT + "rootFile: null\n"),
    "agent-state-dir-in-proc": Case(
        ["agent", "run", "--config", "{config}", "--once"], 2, "/proc/gitplane",
        config=AGENT + "stateDir: /proc/gitplane\n"),
    "agent-config-too-large": Case(
        ["agent", "run", "--config", "{config}", "--once"], 2, "above the 1048576-byte cap",
        config="plane: x\n" + "#" * (1 << 21)),
    "keys-agent-dir-in-proc": Case(
        ["keys", "agent", "--dir", "/proc/gitplane", "--plane", "edge"], 2, "/proc/gitplane"),
    "keys-init-33-root-keys": Case(
        ["keys", "init", "--dir", "{s}/new", "--root-keys", "33"], 2, "<= 32"),
    "keys-rotate-root-keys-offline": Case(
        ["keys", "rotate", "--dir", "{s}/keys-empty", "--role", "commands"], 2,
        "bring them online"),
    "status-path-a-file": Case(
        ["status", "{s}/afile", "--root", "{s}/keys/root.json"], 2, "is a file"),
    "plan-non-utf8-path": Case(["plan", "{s}/\udcff"], 2,
                                "not a directory inside a git"),
    "validate-symlink-to-etc-passwd": Case(["validate", "{s}/evil", "--worktree"], 1,
                                           "evil.yaml"),
    "validate-deep-nesting": Case(["validate", "{s}/deep", "--worktree"], 1, "deep.yaml"),
    "plan-state-repo-without-root": Case(
        ["plan", "{s}/specs", "--state-repo", "{s}/specs"], 2,
        "--state-repo applies only with --root"),
    "plan-state-repo-from-env-without-root": Case(
        ["plan", "{s}/specs", "-o", "json"], 0, '"planes"',
        env={"GITPLANE_STATE_REPO": "{s}/none.git"}),
    "plan-root-from-an-empty-variable-is-unset": Case(
        ["plan", "{s}/specs", "-o", "json"], 0, '"planes"', env={"GITPLANE_ROOT": ""}),
    "status-root-from-an-empty-variable-is-missing": Case(
        ["status", "{s}/specs"], 2, "Missing option '--root'", env={"GITPLANE_ROOT": ""}),
    "reconcile-watch-output": Case(
        [*RECONCILE, "--watch", "-o", "json"], 2, "--output applies only without --watch"),
    "wait-zero-interval": Case(
        ["wait", "model/churn", "{s}/specs", "--root", "{s}/keys/root.json", "--interval", "0s"],
        2, "is zero"),
    "wait-repo-with-no-commits": Case(
        ["wait", "model/churn", "{s}/empty-repo", "--root", "{s}/keys/root.json", "--timeout",
         "0s"], 2, "has no commits yet"),
    "wait-root-not-a-root": Case(
        ["wait", "model/churn", "{s}/specs", "--root", "{s}/empty.json", "--timeout", "0s"], 2,
        "empty.json is not a root of trust"),
    "demo-empty-workdir": Case(["demo", "--example", "{s}/specs", "--workdir", ""], 2,
                               "an empty path"),
    "demo-example-missing": Case(["demo", "--example", "{s}/missing"], 2, "does not exist"),
    "demo-negative-timeout": Case(["demo", "--example", "{s}/specs", "--timeout", "-1"], 2,
                                  "--timeout"),
    "agent-render-a-local-plane": Case(
        ["agent", "render", "--config", "{config}"], 2,
        "runs the local runtime, which applies no manifests", config=GOOD_AGENT),
    "agent-render-no-log": Case(
        ["agent", "render", "--config", "{config}", "-o", "json"], 1,
        "no command log for plane 'local-dev'",
        config=GOOD_AGENT + "runtime: {type: kubernetes}\n"),
    "agent-render-unknown-output": Case(
        ["agent", "render", "--config", "{config}", "-o", "text"], 2,
        "'text' is not one of 'yaml', 'json'", config=GOOD_AGENT),
    "agent-render-config-missing": Case(
        ["agent", "render", "--config", "{s}/none.yaml"], 2, "none.yaml"),
    "agent-run-kubeconfig-missing": Case(
        ["agent", "run", "--config", "{config}", "--once"], 2, "none.kubeconfig: ",
        config=GOOD_AGENT + "runtime: {type: kubernetes, kubeconfig: {s}/none.kubeconfig}\n"),
    "agent-run-kubeconfig-not-yaml": Case(
        ["agent", "run", "--config", "{config}", "--once"], 2,
        "bin.yaml: 'utf-8' codec can't decode",
        config=GOOD_AGENT + "runtime: {type: kubernetes, kubeconfig: {s}/bin.yaml}\n"),
    "agent-run-in-cluster-outside-one": Case(
        ["agent", "run", "--config", "{config}", "--once"], 2,
        "in-cluster configuration: ", config=GOOD_AGENT + "runtime: {type: kubernetes}\n"),
}  # fmt: skip

ROOT = ["--root", "{s}/keys/root.json"]
APPROVALS = {
    "approve-without-key": Case(["approve", "{s}/specs", *ROOT], 2, "Missing option '--key'"),
    "approve-without-root": Case(
        ["approve", "{s}/specs", "--key", "{s}/afile"], 2, "Missing option '--root'"
    ),
    "approve-key-missing": Case(
        ["approve", "{s}/specs", *ROOT, "--key", "{s}/none"], 2, "does not exist"
    ),
    "approve-key-a-directory": Case(
        ["approve", "{s}/specs", *ROOT, "--key", "{s}/adir"], 2, "is a directory"
    ),
    "approve-key-without-public-half": Case(
        ["approve", "{s}/specs", *ROOT, "--key", "{s}/afile"],
        2,
        "afile.pub: No such file or directory",
    ),
    "approve-key-etc-passwd": Case(
        ["approve", "{s}/specs", *ROOT, "--key", "{s}/passwd.pub"],
        2,
        "passwd.pub: the key's base64 does not decode",
    ),
    "approvals-unknown-rev": Case(["approvals", "{s}/specs", *ROOT, "--rev", "nope"], 2, "nope"),
    "approvals-bad-base": Case(["approvals", "{s}/specs", *ROOT, "--base", "nope"], 2, "nope"),
    "approvals-bad-output": Case(
        ["approvals", "{s}/specs", *ROOT, "-o", "markdown"], 2, "'markdown' is not one of"
    ),
    "approvals-no-root-branch": Case(
        ["approvals", "{s}/nospecs", *ROOT], 1, "has no refs/heads/gitplane/root"
    ),
    "approvals-not-a-repo": Case(["approvals", "{s}/adir", *ROOT], 2, "adir"),
}
CASES = {**FOUND, **OURS, **APPROVALS}


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Everything the rows point at, made once: keys (good, mixed up, missing, binary), a
    spec repository, one with no commits, files of the wrong kind."""
    s = tmp_path_factory.mktemp("sandbox")
    with pytest.MonkeyPatch.context() as patch:
        for role in ("AUTHOR", "COMMITTER"):
            patch.setenv(f"GIT_{role}_NAME", "Test User")
            patch.setenv(f"GIT_{role}_EMAIL", "test@example.invalid")
        _make(s)
    yield s


def _make(s: Path) -> None:
    made = {}
    for name in ("keys", "other"):
        made[name] = keyring.init_keys(
            s / name, root_keys=1, threshold=1, now=NOW - timedelta(days=1),
            lifetime=timedelta(days=365),
        )  # fmt: skip
    for name in ("keys-mixed", "keys-empty", "keys-binary"):
        (s / name).mkdir()
        shutil.copy(s / "keys" / "root.json", s / name / "root.json")
    shutil.copytree(s / "other" / "reconciler", s / "keys-mixed" / "reconciler")
    (s / "keys-binary" / "root.json").write_bytes(bytes(range(256)))
    keys.FileSigner.generate().save(s / "agent.key")
    shutil.copytree(EXAMPLE_REPO, s / "specs")
    commit_all(init_repo(s / "specs"), "specs")
    init_repo(s / "empty-repo")
    (init_repo(s / "nospecs") / "README.md").write_text("no specs here\n")
    commit_all(s / "nospecs")
    (s / "binspecs").mkdir()
    (s / "binspecs" / "bin.yaml").write_bytes(b"\x00\xff" * 64)
    (s / "afile").write_text("a file\n")
    (s / "empty.json").write_text("")
    (s / "bin.yaml").write_bytes(b"\x00\xff\x00" * 100)
    (s / "latin.yaml").write_bytes(b"plane: caf\xe9\n")
    (s / "passwd.yaml").symlink_to("/etc/passwd")
    (s / "passwd.pub").symlink_to("/etc/passwd")
    (s / "adir").mkdir()
    (s / "evil").mkdir()
    (s / "evil" / "evil.yaml").symlink_to("/etc/passwd")
    (s / "deep").mkdir()
    (s / "deep" / "deep.yaml").write_text("a: " + "[" * 100_000 + "\n")
    git(s, "--version")


def _fill(text: str, s: Path, config: Path) -> str:
    return text.replace("{s}", str(s)).replace("{config}", str(config))


@pytest.fixture(autouse=True)
def _at_the_tests_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_clock, "now", lambda: NOW)


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_a_bad_invocation_says_what_is_wrong(
    case: Case, sandbox: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text(_fill(case.config, sandbox, config))
    args = [_fill(arg, sandbox, config) for arg in case.args]
    env = {name: _fill(value, sandbox, config) for name, value in case.env.items()}
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)  # a default path (demo's --workdir) lands here
        code, said = _run(args, env, process=case.process)
    assert "Traceback" not in said and code != cli_main.EXIT_CRASH, said
    assert code == case.code, said
    assert case.says in said, said


def _run(args: list[str], env: dict[str, str], *, process: bool) -> tuple[int, str]:
    if not process:
        done = invoke.gitplane(args, env)
        return done.code, done.stdout + done.stderr
    ran = subprocess.run(
        [str(Path(sys.executable).parent / "gitplane"), *args], capture_output=True, check=False,
        env={**os.environ, **env}, timeout=120,
    )  # fmt: skip
    return ran.returncode, (ran.stdout + ran.stderr).decode("latin-1")


def test_a_refused_rotation_leaves_no_key_behind(tmp_path: Path) -> None:
    """A rotation refused for a bad option wrote the new root keys first, so the corrected
    retry failed on them ("exists; refusing to overwrite a private key")."""
    keyring.init_keys(
        tmp_path, root_keys=1, threshold=1, now=NOW, lifetime=timedelta(days=365)
    )  # fmt: skip
    before = sorted(tmp_path.rglob("*"))
    rotate = ["keys", "rotate", "--dir", str(tmp_path), "--role", "root", "--root-keys", "3"]
    for bad in (["--threshold", "9"], ["--threshold", "0"]):
        done = invoke.gitplane([*rotate, *bad])
        assert done.code == 2 and "threshold" in done.stderr, done.stderr
        assert sorted(tmp_path.rglob("*")) == before
    done = invoke.gitplane([*rotate, "--threshold", "2"])
    assert done.code == 0, done.stderr
    assert len(list((tmp_path / "root" / "v2").glob("*.key"))) == 3
