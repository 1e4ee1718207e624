"""Text that came from git or from a signed document, made inert for a terminal.

Anything a pusher or a plane's agent wrote (a refusal's message, a resource's
status message, a commit subject, a claimed phase) may carry a newline that forges
another line of output, or ESC and CR sequences that recolour, move the cursor or
erase a warning on a terminal. Every text renderer passes such strings through
:func:`inert` before it prints them; JSON output is escaped by its encoder.
"""

from __future__ import annotations

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def inert(text: str) -> str:
    """``text`` with every character that is not printable escaped (``\\n``, ``\\x1b``,
    ``\\u2028``, ``\\u202e``…): one line, shown as written, that changes nothing else on
    the screen."""
    if text.isprintable():
        return text
    return "".join(_escape(ch) for ch in text)


def _escape(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    if ch.isprintable():
        return ch
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
