"""Train the churn model on data generated here, so the project runs offline.

Logs parameters, accuracy and AUC, and the fitted scikit-learn pipeline as
the MLflow model ``model`` with its signature and an input example.
"""

from __future__ import annotations

import argparse

import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
from mlflow.models import infer_signature
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

FEATURES = ["tenure_months", "monthly_spend", "support_tickets", "events_7d", "spend_7d"]


def make_customers(n: int, seed: int) -> pd.DataFrame:
    """Customers whose churn depends on tenure, tickets and recent activity, plus noise."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "tenure_months": rng.integers(1, 72, n).astype(float),
        "monthly_spend": rng.gamma(2.0, 30.0, n),
        "support_tickets": rng.poisson(1.5, n).astype(float),
        "events_7d": rng.poisson(12, n).astype(float),
        "spend_7d": rng.gamma(2.0, 10.0, n),
    })
    logit = (1.5 - 0.06 * frame.tenure_months + 0.5 * frame.support_tickets
             - 0.08 * frame.events_7d + rng.normal(0, 0.5, n))
    frame["churned"] = (logit > 0).astype(int)
    return frame


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n-samples", type=float, default=4000)
    parser.add_argument("--c", type=float, default=1.0)
    parser.add_argument("--seed", type=float, default=7)
    args = parser.parse_args()
    data = make_customers(int(args.n_samples), int(args.seed))
    x_train, x_test, y_train, y_test = train_test_split(
        data[FEATURES], data["churned"], test_size=0.25, random_state=int(args.seed))
    model = make_pipeline(StandardScaler(), LogisticRegression(C=float(args.c), max_iter=500))
    model.fit(x_train, y_train)
    accuracy = accuracy_score(y_test, model.predict(x_test))
    auc = roc_auc_score(y_test, model.predict_proba(x_test)[:, 1])
    with mlflow.start_run(nested=mlflow.active_run() is not None):
        mlflow.log_params({"n_samples": int(args.n_samples), "c": float(args.c)})
        mlflow.log_metrics({"accuracy": accuracy, "auc": auc})
        example = x_test.head(5)
        mlflow.sklearn.log_model(model, name="model", input_example=example,
                                 signature=infer_signature(example, model.predict(example)))
    print(f"accuracy={accuracy:.3f} auc={auc:.3f}")


if __name__ == "__main__":
    main()
