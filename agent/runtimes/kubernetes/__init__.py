"""The ``kubernetes`` runtime: the same commands as Kubernetes workloads (issue 20; ADR 0015).

Only this package imports the official ``kubernetes`` client (an import-linter contract).
So far it renders what a plane applies (:mod:`.render`); the apply loop comes next.
"""
