"""Why a feature set run failed, by what happens next."""

from __future__ import annotations

from schemas.errors import GitplaneError


class FeatureError(GitplaneError):
    """A feature set could not be computed, stored or read."""


class StalledError(FeatureError):
    """Needs a new commit (an invalid spec, a source outside the data directory): no retry."""


class RunError(FeatureError):
    """This run failed (missing source, SQL error, bad result): retried per ``spec.retry``."""
