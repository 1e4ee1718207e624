"""The one place Gitplane reads the time of day, and where a command sleeps.

Everything below the CLI takes ``now`` as a value (or, in a daemon's loop, this
function as its clock), so a test gives the code the time it signed its fixtures
at. There is deliberately no way to set this clock (no flag, no environment
variable): a control plane that checks expiry must not trust a clock a user can
set by accident (ADR 0010). Tests move the clock of a whole process instead.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime


def now() -> datetime:
    """The current time, in UTC."""
    return datetime.now(UTC)


def sleep(seconds: float) -> None:
    """Wait ``seconds`` of real time (``gitplane wait``); a test replaces this with a clock
    that moves :func:`now` on instead."""
    time.sleep(seconds)
