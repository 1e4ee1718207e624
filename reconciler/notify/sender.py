"""Delivery in a background thread: the reconcile loop only enqueues.

At-least-once, per target and event: a delivery is tried up to
``Policy.attempts`` times, waiting ``base * 2**n`` seconds (capped) between tries,
or what a 429's or 503's ``Retry-After`` asks, on a connection error, a timeout,
a 5xx or a 429; any other 4xx is the receiver refusing it for good and is not
retried. The queue is bounded: when it is full a new delivery is dropped,
logged and counted, and the reconciler goes on. What is still queued when the
process dies is lost (docs/operations.md "Notifications").
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from reconciler.notify import _http
from reconciler.notify.targets import Request

log = logging.getLogger("gitplane.notify")

Post = Callable[[Request, float], _http.Response]
Outcome = Callable[[str, str], None]
"""Called with (target, outcome): ``delivered``, ``retried``, ``failed`` or ``dropped``."""


@dataclass(frozen=True)
class Policy:
    """How hard to try one delivery."""

    attempts: int = 5
    base: float = 1.0  # seconds before the second attempt; doubled for each next one
    max_delay: float = 60.0  # seconds: no wait between two attempts is longer
    timeout: float = 10.0  # seconds per attempt, to connect and for each read
    capacity: int = 1000  # deliveries queued at most


@dataclass(frozen=True)
class Delivery:
    """One request to one target."""

    target: str
    request: Request
    what: str
    """The event in words, for the log."""


def is_retried(status: int | None) -> bool:
    """Whether an answer (None: no answer) is worth another try."""
    return status is None or status == 429 or status >= 500


def delay(policy: Policy, attempt: int, retry_after: str | None) -> float:
    """Seconds to wait after failed ``attempt`` (1-based): ``Retry-After`` (in seconds) when
    the receiver gave one, else exponential backoff; never more than ``max_delay``."""
    asked = retry_after.strip() if retry_after else ""
    wait = float(asked) if asked.isdigit() else policy.base * 2 ** (attempt - 1)
    return min(wait, policy.max_delay)


class Sender:
    """A bounded queue and the one thread that empties it."""

    def __init__(
        self,
        *,
        policy: Policy = Policy(),
        post: Post = _http.post,
        sleep: Callable[[float], object] | None = None,
        outcome: Outcome = lambda _target, _outcome: None,
    ) -> None:
        self.policy = policy
        self._post = post
        self._stop = threading.Event()
        self._sleep = sleep or self._stop.wait
        """Waits between attempts; by default cut short by :meth:`close`."""
        self._outcome = outcome
        self._queue: queue.Queue[Delivery] = queue.Queue(policy.capacity)
        self._idle = threading.Condition()
        self._pending = 0
        self._thread = threading.Thread(target=self._run, name="gitplane-notify", daemon=True)
        self._thread.start()

    def submit(self, delivery: Delivery) -> None:
        """Queue ``delivery`` without waiting; drop it (logged, counted) if the queue is full."""
        with self._idle:
            self._pending += 1
        try:
            self._queue.put_nowait(delivery)
        except queue.Full:
            self._done()
            self._outcome(delivery.target, "dropped")
            fields = {"target": delivery.target, "event": delivery.what}
            log.warning("notification dropped: queue full", extra={"fields": fields})

    def close(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for the queue to empty, then stop; the number of
        deliveries not made."""
        with self._idle:
            self._idle.wait_for(lambda: self._pending == 0, timeout=timeout)
            left = self._pending
        self._stop.set()
        if left:
            log.warning("notifications not delivered", extra={"fields": {"left": left}})
        return left

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                delivery = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                self._deliver(delivery)
            except Exception:  # a bug here must not stop every later notification
                log.exception("notification failed", extra={"fields": {"target": delivery.target}})
            finally:
                self._done()

    def _deliver(self, delivery: Delivery) -> None:
        for attempt in range(1, self.policy.attempts + 1):
            status, retry_after, why = self._attempt(delivery.request)
            if status is not None and 200 <= status < 300:
                self._outcome(delivery.target, "delivered")
                return
            if not is_retried(status) or attempt == self.policy.attempts or self._stop.is_set():
                break
            self._outcome(delivery.target, "retried")
            self._sleep(delay(self.policy, attempt, retry_after))
        self._outcome(delivery.target, "failed")
        fields = {"target": delivery.target, "why": why, "event": delivery.what}
        log.warning("notification failed", extra={"fields": fields})

    def _attempt(self, request: Request) -> tuple[int | None, str | None, str]:
        try:
            answer = self._post(request, self.policy.timeout)
        except _http.DeliveryError as exc:
            return None, None, str(exc)
        return answer.status, answer.retry_after, f"HTTP {answer.status}"

    def _done(self) -> None:
        with self._idle:
            self._pending -= 1
            self._idle.notify_all()
