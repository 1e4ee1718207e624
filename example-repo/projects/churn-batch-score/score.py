"""Score the CSV shards of this partition with the registered churn model.

The runtime puts the shards under ``<input_dir>/extract/shards/``: read them wherever they are.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import mlflow
import mlflow.pyfunc
import pandas as pd

FEATURES = ["tenure_months", "monthly_spend", "support_tickets", "events_7d", "spend_7d"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--input-dir", default=".")
    parser.add_argument("--model-uri", default="models:/churn@champion")
    args = parser.parse_args()
    model = mlflow.pyfunc.load_model(args.model_uri)
    frames = [pd.read_csv(p) for p in sorted(Path(args.input_dir).rglob("*.csv"))]
    data = pd.concat(frames) if frames else pd.DataFrame(columns=["customer_id", *FEATURES])
    data["churn_score"] = model.predict(data[FEATURES]) if len(data) else []
    with tempfile.TemporaryDirectory() as tmp, mlflow.start_run(nested=True):
        out = Path(tmp) / "scores.csv"
        data[["customer_id", "churn_score"]].to_csv(out, index=False)
        mlflow.log_artifact(str(out), artifact_path="scores")
        mlflow.log_metric("rows_scored", len(data))


if __name__ == "__main__":
    main()
