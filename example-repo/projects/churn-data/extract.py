"""Write customer rows as CSV shards and log them as the artifact directory ``shards``.

The next step is partitioned over these files, one object per shard.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=float, default=2000)
    parser.add_argument("--shards", type=float, default=8)
    args = parser.parse_args()
    rng = np.random.default_rng(11)
    rows = int(args.rows)
    frame = pd.DataFrame({
        "customer_id": np.arange(rows),
        "tenure_months": rng.integers(1, 72, rows).astype(float),
        "monthly_spend": rng.gamma(2.0, 30.0, rows),
        "support_tickets": rng.poisson(1.5, rows).astype(float),
        "events_7d": rng.poisson(12, rows).astype(float),
        "spend_7d": rng.gamma(2.0, 10.0, rows),
    })
    with tempfile.TemporaryDirectory() as tmp, mlflow.start_run(nested=True):
        for index, rows_of_shard in enumerate(np.array_split(np.arange(rows), int(args.shards))):
            shard = frame.iloc[rows_of_shard]
            shard.to_csv(Path(tmp) / f"customers-{index:03d}.csv", index=False)
        mlflow.log_artifacts(tmp, artifact_path="shards")
        mlflow.log_metric("rows", rows)


if __name__ == "__main__":
    main()
