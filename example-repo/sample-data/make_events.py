"""Write events.csv: 2,000 purchase events of 50 customers in the first quarter of 2026.

Deterministic (a fixed seed), so the file can be checked in and regenerated identically::

    python make_events.py            # writes events.csv beside this script
    python make_events.py out.csv

Columns match features/customer-activity.yaml: customer_id, event_time (ISO-8601, UTC),
amount. Customers differ in how often they buy, and some stop buying in February, so
windows and ttl have something to show.
"""

from __future__ import annotations

import csv
import random
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

SEED = 2026
EVENTS = 2000
CUSTOMERS = 50
START = datetime(2026, 1, 1, tzinfo=UTC)
SPAN = timedelta(days=90)


def events(rng: random.Random) -> list[tuple[int, str, str]]:
    """Rows sorted by event time."""
    weights = [rng.uniform(0.2, 3.0) for _ in range(CUSTOMERS)]
    churned = {c for c in range(1, CUSTOMERS + 1) if rng.random() < 0.2}
    rows = []
    while len(rows) < EVENTS:
        customer = rng.choices(range(1, CUSTOMERS + 1), weights)[0]
        moment = START + timedelta(seconds=rng.randrange(int(SPAN.total_seconds())))
        if customer in churned and moment >= START + timedelta(days=45):
            continue
        amount = round(rng.lognormvariate(3.0, 0.8), 2)
        rows.append((moment, customer, amount))
    rows.sort()
    return [(c, f"{m:%Y-%m-%dT%H:%M:%SZ}", f"{a:.2f}") for m, c, a in rows]


def main(target: Path) -> None:
    """Write the events to ``target``."""
    with target.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["customer_id", "event_time", "amount"])
        writer.writerows(events(random.Random(SEED)))  # noqa: S311 - sample data, not secrets


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("events.csv"))
