"""Errors the CLI maps to exit codes, by what the caller must do."""

from __future__ import annotations


class GitplaneError(Exception):
    """Base of every error Gitplane reports without a traceback."""

    exit_code = 1


class UsageError(GitplaneError):
    """The command was asked for something impossible (bad path, unknown revision)."""

    exit_code = 2


class ReportedError(GitplaneError):
    """A check that ran and failed, its findings already printed (invalid specs, a stale
    file, a refused log): exit 1, nothing more is said."""


class ChangesPendingError(GitplaneError):
    """``plan --detailed-exitcode`` found changes (terraform's exit 2): not a failure."""

    exit_code = 2
