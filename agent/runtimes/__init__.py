"""Runtimes apply commands on a data plane: ``local`` (embedded) and ``kubernetes``."""
