"""Errors the CLI maps to exit codes, by what the caller must do."""

from __future__ import annotations


class GitplaneError(Exception):
    """Base of every error Gitplane reports without a traceback."""

    exit_code = 1


class UsageError(GitplaneError):
    """The command was asked for something impossible (bad path, unknown revision)."""

    exit_code = 2
