"""Why signed data was refused: one typed error per attack, each with a stable code.

Codes travel in signed status reports (``error.code``), so they are part of the
protocol: never rename one. The hierarchy is shallow, by what the caller does:
every :class:`VerificationError` means "apply nothing, keep the previous
trusted state, report the code".
"""

from __future__ import annotations

from schemas import signed
from schemas.errors import GitplaneError


class VerificationError(GitplaneError):
    """Signed data failed verification; nothing from it may be used."""

    code = "verification-failed"


class MalformedError(VerificationError):
    """Bytes that do not parse strictly (duplicate keys, NaN, floats, bad fields)."""

    code = "malformed"


class OversizedError(VerificationError):
    """Data above its size cap, refused before parsing."""

    code = "oversized"


class BadKeyError(VerificationError):
    """A public key that is malformed, not a curve point, or of small order."""

    code = "bad-key"


class WrongTypeError(VerificationError):
    """A document of another role or payload type than the one expected."""

    code = "wrong-type"


class SignatureError(VerificationError):
    """Unsigned, wrongly signed, or fewer distinct valid keys than the threshold."""

    code = "bad-signature"


class WrongPlaneError(VerificationError):
    """A document issued for another data plane."""

    code = "wrong-plane"


class RollbackError(VerificationError):
    """A version or sequence older than one already trusted."""

    code = "rollback"


class ExpiredError(VerificationError):
    """Data past its expiry: a freeze attack, or a reconciler that stopped."""

    code = "expired"


class MixAndMatchError(VerificationError):
    """Files that never existed together: a broken hash chain or head digest."""

    code = "mix-and-match"


class ReplayError(VerificationError):
    """A status report whose counter is not newer than one already seen."""

    code = "replay"


class UnknownCommandError(VerificationError):
    """A status report claiming a command that was never issued."""

    code = "unknown-command"


class ClockSkewError(VerificationError):
    """This machine's clock is earlier than a time already verified as signed: expiry cannot
    be judged (a clock set back would take a frozen log for a fresh one)."""

    code = "clock-skew"


class AheadOfLogError(UnknownCommandError):
    """A report, signed by the plane's registered key, that the plane applied a bundle the log
    does not hold: the log was rolled back or rewritten after the agent read it (or the key
    signs what never happened). The verified report is kept: it is the evidence."""

    def __init__(self, message: str, status: signed.Status) -> None:
        super().__init__(message)
        self.status = status
