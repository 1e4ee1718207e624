"""Notifications: what changed (pure), each target's request against a real HTTP
receiver, retries, a receiver that hangs, and the configuration file's errors."""

from __future__ import annotations

import hashlib
import hmac
import logging
import socket
import threading
from pathlib import Path

import pytest

from reconciler import reconcile as reconciling
from reconciler.notify import _http, config, events, sender, targets
from reconciler.notify.events import Event, PlaneView, ResourceView
from reconciler.notify.notifier import Notifier
from reconciler.plan import Plan
from reconciler.recorded import RecordedPlane
from schemas import signed
from schemas.errors import UsageError
from tests.receiver import Receiver

SHA = "a" * 40
OLD = "b" * 40
DIGEST = "sha256:" + "1" * 64
POLICY = sender.Policy(attempts=3, timeout=5)


def _destination(target: dict[str, object], value: str = "s3cret") -> config.Destination:
    document = {"apiVersion": "gitplane.dev/v1alpha1", "kind": "Notifications"}
    parsed = config.Notifications.model_validate({**document, "spec": {"targets": [target]}})
    found = parsed.spec.targets[0]
    return config.Destination(f"{found.type}[0]", found, value)


def _hook(receiver: Receiver) -> config.Destination:
    return _destination({"type": "webhook", "url": f"{receiver.url}/hook", "secretEnv": "S"})


def _deliver(
    destination: config.Destination,
    event: Event,
    policy: sender.Policy = POLICY,
) -> tuple[list[float], list[str]]:
    """Send one event for real; the waits asked for between attempts and the outcomes."""
    waits: list[float] = []
    outcomes: list[str] = []
    out = sender.Sender(policy=policy, sleep=waits.append, outcome=lambda _t, o: outcomes.append(o))
    request = targets.request(destination, event, "delivery-1")
    out.submit(sender.Delivery(destination.name, request, targets.line(event)))
    assert out.close(timeout=10) == 0
    return waits, outcomes


# What changed: a pure function of two views.

READY = ResourceView("Ready", DIGEST, applied=True, commit=OLD)
PENDING = {"Model/churn": ResourceView("Pending", "")}


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        ({}, {"Model/churn": READY}, [("applied", "Model/churn", OLD)]),
        (PENDING, {"Model/churn": ResourceView("Ready", DIGEST)}, []),  # not what was issued
        (PENDING, {"Model/churn": ResourceView("Failed", DIGEST, message="boom")}, [
            ("failed", "Model/churn", SHA)]),
        (PENDING, {"Model/churn": ResourceView("Stalled", DIGEST, commit=OLD)}, [
            ("stalled", "Model/churn", OLD)]),
        (PENDING, {"Model/churn": ResourceView("Progressing", DIGEST)}, []),
        ({"Model/churn": READY}, {"Model/churn": READY}, []),  # no repeat
    ],
    ids=["applied", "drift-is-not-applied", "failed", "stalled", "progressing", "unchanged"],
)  # fmt: skip
def test_a_resource_change_is_one_event(
    before: dict[str, ResourceView], after: dict[str, ResourceView], expected: list[tuple[str, ...]]
) -> None:
    found = events.changes({"p": PlaneView(before)}, {"p": PlaneView(after)}, {}, commit=SHA)
    assert [(e.event, e.resource, e.commit) for e in found] == expected


def test_blocked_actions_and_alarming_flags_are_told_once() -> None:
    after = {"p": PlaneView(blocked={"Model/churn": "scan failed"}, flag="agent reports x: y")}
    found = events.changes({}, after, {}, commit=SHA)
    assert [(e.event, e.resource, e.detail) for e in found] == [
        ("attack", "", "agent reports x: y"),
        ("blocked", "Model/churn", "scan failed"),
    ]
    assert events.changes(after, after, {}, commit=SHA) == []


def test_the_first_run_tells_only_what_it_issued() -> None:
    after = {"p": PlaneView({"Model/churn": READY}, {"DAG/d": "no"}, "agent reports x: y")}
    head = signed.Head(sequence=3, digest=DIGEST)
    found = events.changes(None, after, {"p": head}, commit=SHA)
    assert found == [Event("issued", "p", SHA, detail="bundle 3", sequence=3)]


def test_the_view_kept_between_runs_reads_back() -> None:
    view = {"p": PlaneView({"Model/churn": READY}, {"DAG/d": "no"}, "status refused: x")}
    again = events.loads(events.dumps(view))
    assert events.changes(again, view, {}, commit=SHA) == []
    with pytest.raises(ValueError, match="not a notifier state"):
        events.loads('{"version": 1}')


# Each target against a real receiver.

EVENT = Event("failed", "prod-eu", SHA, "Model/churn", "scan <failed> & stopped")


def test_a_webhook_is_json_signed_with_hmac(receiver: Receiver) -> None:
    _deliver(_hook(receiver), EVENT)
    (got,) = receiver.at("/hook")
    expected = hmac.new(b"s3cret", got.body, hashlib.sha256).hexdigest()
    assert got.headers["X-Gitplane-Signature"] == f"sha256={expected}"
    assert got.headers["X-Gitplane-Delivery"] == "delivery-1"
    assert got.headers["X-Gitplane-Event"] == "failed"
    assert got.json() == {**EVENT.as_dict(), "delivery": "delivery-1"}


def test_slack_gets_one_readable_line(receiver: Receiver) -> None:
    _deliver(_destination({"type": "slack", "urlEnv": "U"}, f"{receiver.url}/services/T/B"), EVENT)
    (got,) = receiver.at("/services/T/B")
    assert got.json() == {
        "text": "gitplane prod-eu: Model/churn failed at aaaaaaaaaaaa: "
        "scan &lt;failed&gt; &amp; stopped"
    }


APPLIED = Event("applied", "prod-eu", SHA, "Model/churn")


@pytest.mark.parametrize(
    ("target", "event", "sent", "expected"),
    [
        ({"type": "github", "repository": "acme/specs"}, EVENT,
         (f"/repos/acme/specs/statuses/{SHA}", "Authorization", "Bearer tok"),
         {"state": "failure", "context": "gitplane/prod-eu",
          "description": "Model/churn failed: scan <failed> & stopped"}),
        ({"type": "github", "repository": "acme/specs"}, APPLIED,
         (f"/repos/acme/specs/statuses/{SHA}", "Authorization", "Bearer tok"),
         {"state": "success", "context": "gitplane/prod-eu", "description": "Model/churn applied"}),
        ({"type": "gitlab", "project": "acme/specs"}, APPLIED,
         (f"/projects/acme%2Fspecs/statuses/{SHA}", "Private-Token", "tok"),
         {"state": "success", "name": "gitplane/prod-eu", "description": "Model/churn applied"}),
        ({"type": "gitlab", "project": 42}, EVENT,
         (f"/projects/42/statuses/{SHA}", "Private-Token", "tok"),
         {"state": "failed", "name": "gitplane/prod-eu",
          "description": "Model/churn failed: scan <failed> & stopped"}),
    ],
    ids=["github-failure", "github-success", "gitlab-success", "gitlab-failed-by-id"],
)  # fmt: skip
def test_a_forge_gets_a_commit_status_on_the_spec_commit(
    receiver: Receiver, target: dict[str, object], event: Event, sent: tuple[str, str, str],
    expected: dict[str, str],
) -> None:  # fmt: skip
    path, header, token = sent
    api = {"apiUrl": f"{receiver.url}/api", "tokenEnv": "T"}
    _deliver(_destination({**target, **api}, "tok"), event)
    (got,) = receiver.at(f"/api{path}")
    assert got.headers[header] == token
    assert got.json() == expected


def test_a_forge_description_fits_140_characters() -> None:
    long = Event("failed", "p", SHA, "Model/churn", "x" * 500)
    assert len(targets.describe(long)) == targets.DESCRIPTION_MAX


# Delivery: retries, no retry, and a receiver that hangs.


@pytest.mark.parametrize(
    ("script", "waits", "outcomes"),
    [
        ([(503, {})], [1.0], ["retried", "delivered"]),
        ([(429, {"Retry-After": "7"})], [7.0], ["retried", "delivered"]),
        ([(500, {}), (502, {}), (503, {})], [1.0, 2.0], ["retried", "retried", "failed"]),
        ([(400, {})], [], ["failed"]),
    ],
    ids=["503-then-ok", "429-retry-after", "gives-up", "400-is-final"],
)
def test_a_delivery_is_retried_only_when_it_may_succeed(
    receiver: Receiver, script: list[tuple[int, dict[str, str]]], waits: list[float],
    outcomes: list[str],
) -> None:  # fmt: skip
    receiver.script = list(script)
    assert _deliver(_hook(receiver), EVENT) == (waits, outcomes)
    assert len(receiver.requests) == len(outcomes)
    assert len({r.headers["X-Gitplane-Delivery"] for r in receiver.requests}) == 1


def test_an_unreachable_receiver_is_retried_then_given_up() -> None:
    with socket.socket() as closed:  # a port nothing listens on once the socket is closed
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    target = {"type": "webhook", "url": f"http://127.0.0.1:{port}/hook", "secretEnv": "S"}
    assert _deliver(_destination(target), EVENT) == ([1.0, 2.0], ["retried", "retried", "failed"])


def test_a_receiver_that_never_answers_is_given_up_after_the_timeout(receiver: Receiver) -> None:
    receiver.hold = threading.Event()  # answers only once released, after the assertions
    outcomes: list[str] = []
    policy = sender.Policy(attempts=1, timeout=0.3)
    out = sender.Sender(policy=policy, outcome=lambda _t, o: outcomes.append(o))
    out.submit(sender.Delivery("webhook[0]", targets.request(_hook(receiver), EVENT, "d"), "e"))
    assert out.close(timeout=10) == 0
    assert outcomes == ["failed"]
    assert len(receiver.requests) == 1


def test_a_full_queue_drops_and_counts(receiver: Receiver) -> None:
    receiver.hold = threading.Event()
    outcomes: list[str] = []
    out = sender.Sender(policy=sender.Policy(capacity=1), outcome=lambda _t, o: outcomes.append(o))
    request = targets.request(_hook(receiver), EVENT, "d")
    out.submit(sender.Delivery("webhook[0]", request, "e"))
    assert receiver.arrived.wait(timeout=10)  # the first is in flight: the queue is empty
    out.submit(sender.Delivery("webhook[0]", request, "e"))
    out.submit(sender.Delivery("webhook[0]", request, "e"))
    assert outcomes == ["dropped"]
    receiver.hold.set()
    assert out.close(timeout=10) == 0
    assert outcomes == ["dropped", "delivered", "delivered"]


def test_an_unreadable_memory_counts_as_a_first_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "notified.json").write_text("{not json")
    notifier = Notifier([], tmp_path, sender.Sender())
    head = signed.Head(sequence=2, digest=DIGEST)
    cycle = reconciling.Cycle(
        SHA, Plan(SHA), issued={"p": head}, recorded={"p": RecordedPlane("p")}
    )
    with caplog.at_level(logging.WARNING, logger="gitplane.notify"):
        found = notifier.observe(cycle, {})
    assert found == [Event("issued", "p", SHA, detail="bundle 2", sequence=2)]
    assert "treating the current state as notified" in caplog.text
    assert events.loads((tmp_path / "notified.json").read_text()) == {"p": PlaneView()}
    assert notifier.close(timeout=5) == 0


# The configuration file.

GOOD = """\
apiVersion: gitplane.dev/v1alpha1
kind: Notifications
spec:
  targets:
    - type: webhook
      url: https://hooks.example.com/gitplane
      secretEnv: HOOK_SECRET
      events: [failed, attack]
    - type: github
      repository: acme/specs
      tokenEnv: GITHUB_TOKEN
      planes: [prod-eu]
"""


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        (("secretEnv", "secretEnvv"), "notify.yaml:7:7: spec.targets[0].secretEnvv: unknown field "
            "'secretEnvv' (did you mean 'secretEnv'?)"),
        (("[failed, attack]", "[failed, atack]"), "notify.yaml:8:24: spec.targets[0].events[1]: "
            "'atack' is not allowed (did you mean 'attack'?)"),
        (("[failed, attack]", "[atack]"), "notify.yaml:8:16: spec.targets[0].events[0]: "
            "'atack' is not allowed (did you mean 'attack'?)"),
        (("type: github", "type: gitea"), "notify.yaml:9:7: spec.targets[1]: type must be one of "
            "webhook, slack, github, gitlab"),
        (("https://hooks", "ftp://hooks"), "notify.yaml:6:12: spec.targets[0].url: "
            "'ftp://hooks.example.com/gitplane' is not an http:// or https:// URL"),
        (("acme/specs", "acme"), "notify.yaml:10:19: spec.targets[1].repository: "
            "'acme' is not OWNER/NAME"),
        (("kind: Notifications", "kind: Notification"), "notify.yaml:2:7: kind: "),
        (("  targets:", "  targets: {}\n  x:"), "notify.yaml:4:12: spec.targets: expected a list"),
    ],
    ids=["typo", "event", "only-event", "type", "scheme", "repository", "kind", "mapping"],
)  # fmt: skip
def test_a_bad_file_is_one_line_at_its_place(
    tmp_path: Path, edit: tuple[str, str], says: str
) -> None:
    path = tmp_path / "notify.yaml"
    path.write_text(GOOD.replace(*edit))
    with pytest.raises(UsageError) as raised:
        config.load(path)
    assert str(raised.value).startswith(f"{path.parent}/{says}"), str(raised.value)
    assert "\n" not in str(raised.value)


def test_a_good_file_resolves_its_secrets(tmp_path: Path) -> None:
    path = tmp_path / "notify.yaml"
    path.write_text(GOOD)
    loaded = config.load(path)
    found = config.resolve(loaded, path, {"HOOK_SECRET": "h", "GITHUB_TOKEN": "g"})
    assert [(d.name, d.secret) for d in found] == [("webhook[0]", "h"), ("github[1]", "g")]
    assert [d.target.wants("applied", "prod-eu") for d in found] == [False, True]
    assert [d.target.wants("failed", "dev") for d in found] == [True, False]
    with pytest.raises(UsageError, match=r"spec.targets\[1\].tokenEnv: environment variable "
                       "GITHUB_TOKEN is not set"):  # fmt: skip
        config.resolve(loaded, path, {"HOOK_SECRET": "h"})


def test_a_slack_url_from_the_environment_must_be_a_url(tmp_path: Path) -> None:
    """The Slack webhook's URL is the secret, so it comes from the environment: a value that
    is no URL is refused at start, not a traceback in the sender at the first event."""
    path = tmp_path / "notify.yaml"
    path.write_text(
        "apiVersion: gitplane.dev/v1alpha1\nkind: Notifications\n"
        "spec:\n  targets:\n  - type: slack\n    urlEnv: SLACK_URL\n"
    )
    loaded = config.load(path)
    with pytest.raises(UsageError, match="SLACK_URL is not an http:// or https:// URL"):
        config.resolve(loaded, path, {"SLACK_URL": "not a url"})
    with pytest.raises(UsageError, match=r"SLACK_URL is not set \(or empty\)"):
        config.resolve(loaded, path, {"SLACK_URL": "  "})


def test_a_url_urllib_cannot_read_is_a_delivery_error() -> None:
    request = targets.Request("not a url", b"{}", {})
    with pytest.raises(_http.DeliveryError, match="unknown url type"):
        _http.post(request, 1.0)
