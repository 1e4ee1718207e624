"""Notifications of state changes: webhooks, Slack, GitHub and GitLab commit statuses.

``config`` reads the file, ``events`` finds what changed (pure), ``targets``
formats each request (pure), ``sender`` delivers in a background thread, and
``notifier`` ties them to the reconcile loop.
"""

from reconciler.notify.config import Destination, Notifications, load, resolve
from reconciler.notify.notifier import DRAIN_TIMEOUT, Notifier
from reconciler.notify.sender import Policy, Sender

__all__ = [
    "DRAIN_TIMEOUT",
    "Destination",
    "Notifications",
    "Notifier",
    "Policy",
    "Sender",
    "load",
    "resolve",
]
