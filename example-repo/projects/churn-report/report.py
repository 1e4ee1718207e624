"""Summarise every partition's scores into one churn report."""

from __future__ import annotations

import argparse
from pathlib import Path

import mlflow
import pandas as pd


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--input-dir", default=".")
    args = parser.parse_args()
    files = sorted(Path(args.input_dir).rglob("scores.csv"))
    scores = pd.concat([pd.read_csv(p) for p in files]) if files else pd.DataFrame()
    with mlflow.start_run(nested=True):
        mlflow.log_metric("customers", len(scores))
        rate = float(scores["churn_score"].mean()) if len(scores) else 0.0
        mlflow.log_metric("predicted_churn_rate", rate)
        print(f"customers={len(scores)} predicted_churn_rate={rate:.3f}")


if __name__ == "__main__":
    main()
