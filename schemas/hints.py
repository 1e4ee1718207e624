"""Turn pydantic's errors into messages a spec author can act on.

Unknown fields get a "did you mean", numbers where strings belong get a hint
to quote them, and regular-expression failures are described in words.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import ErrorDetails

from schemas.problems import closest, did_you_mean

Loc = tuple[str | int, ...]

IMAGE = (
    r"^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*"
    r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[0-9a-f]{64})?$"
)
"""An OCI image reference (``ghcr.io/acme/serve:2.14``, ``repo@sha256:<64 hex>``)."""
SUBDOMAIN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
"""A DNS-1123 subdomain: the name of a Kubernetes Secret."""
GIT_URL = r"^(https?|ssh|git)://\S+$|^[\w.-]+@[\w.-]+:\S+$"
"""A git remote that a pod can reach: a URL, or ``user@host:path``."""
HTTP_URL = r"^https?://[^\s/?#@]+(/[^\s?#]*)?$"
"""An http(s) URL without credentials, query or fragment (a server pods reach)."""

_PATTERN_HELP = {
    IMAGE: "an image reference such as ghcr.io/acme/serve:2.14 or repo@sha256:<64 hex>",
    SUBDOMAIN: "a Secret name (lower-case letters, digits, '-' and '.')",
    GIT_URL: "a git URL a pod can fetch (https://, ssh://, git://, or user@host:path)",
    HTTP_URL: "an http:// or https:// URL without credentials, query or fragment",
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$": "a DNS-1123 label (lower-case letters, digits, '-')",
    r"^[A-Za-z0-9][A-Za-z0-9._+-]*$": 'a version such as "1.2.0"',
    r"^[0-9a-f]{64}$": "64 lower-case hex digits (a 32-byte Ed25519 public key)",
    r"^/": "a path starting with '/'",
    r"^\d{4}-\d{2}-\d{2}$": "a date YYYY-MM-DD",
}
_TYPE_NAMES = {
    "string_type": "a string",
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "dict_type": "a mapping",
    "list_type": "a list",
    "model_type": "a mapping",
    "tuple_type": "a list",
}


@dataclass(frozen=True)
class Found:
    """A problem at a path in a document, not yet placed at a line."""

    path: Loc
    message: str
    on_key: bool = False
    """Point at the key rather than the value (unknown or missing fields)."""
    meant: Loc | None = None
    """For an unknown field: the path of the field it probably is a typo of."""


def explain(cls: type[BaseModel], error: ErrorDetails) -> Found:
    """One pydantic error on a ``cls`` document as a :class:`Found`."""
    loc = tuple(error["loc"])
    kind, value = error["type"], error.get("input")
    if kind == "extra_forbidden":
        field = str(loc[-1])
        meant = closest(field, field_names(cls, loc[:-1]))
        hint = f" (did you mean {meant!r}?)" if meant else ""
        typo_of = (*loc[:-1], meant) if meant else None
        return Found(loc, f"unknown field {field!r}{hint}", on_key=True, meant=typo_of)
    if kind == "missing":
        return Found(loc, f"missing required field {loc[-1]!r}", on_key=True)
    if kind in _TYPE_NAMES:
        return Found(loc, _type_message(_TYPE_NAMES[kind], value))
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        options = [o.strip(" '") for o in expected.replace(" or ", ",").split(",")]
        hint = did_you_mean(str(value), options) if isinstance(value, str) else ""
        return Found(loc, f"{_show(value)} is not allowed{hint}; expected {expected}")
    if kind == "string_pattern_mismatch":
        pattern = error.get("ctx", {}).get("pattern", "")
        return Found(loc, f"{_show(value)} is not {_PATTERN_HELP.get(pattern, pattern)}")
    message = error["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return Found(loc, message[:1].lower() + message[1:], on_key=isinstance(value, dict))


def without_typo_fallout(found: list[Found]) -> list[Found]:
    """Drop "missing required field X" where an unknown field is a typo of X: one mistake,
    one message."""
    typos = {f.meant for f in found if f.meant is not None}
    return [f for f in found if not (f.message.startswith("missing required") and f.path in typos)]


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _type_message(expected: str, value: Any) -> str:
    got = {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        dict: "a mapping",
        list: "a list",
        type(None): "null",
    }.get(type(value), "a value")
    hint = "; quote it" if expected == "a string" and isinstance(value, int | float | bool) else ""
    return f"expected {expected}, got {got} {_show(value)}{hint}"


def field_names(cls: type[BaseModel], loc: Loc) -> list[str]:
    """Keys the model at ``loc`` in a ``cls`` document accepts (empty if not a model)."""
    target = _type_at(cls, loc)
    if isinstance(target, type) and issubclass(target, BaseModel):
        return [f.alias or name for name, f in target.model_fields.items()]
    return []


def _type_at(cls: Any, loc: Loc) -> Any:
    current: Any = cls
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            fields = {f.alias or n: f for n, f in current.model_fields.items()}
            if part not in fields:
                return None
            current = fields[str(part)].annotation
        elif get_origin(current) in (list, tuple, dict):
            current = get_args(current)[-1] if get_args(current) else None
        else:
            return None
    return _unwrap(current)


def _unwrap(tp: Any) -> Any:
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            members = [a for a in get_args(tp) if a is not type(None)]
            tp = members[0] if len(members) == 1 else tp
            if len(members) != 1:
                return tp
        else:
            return tp
