"""Personal-API-key scopes (reference §8): the vocabulary and the one rule that checks them.

`X:write` implies `X:read`; `"*"` allows everything; a legacy key with no scopes is allowed
everything. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

__all__ = ["SCOPE_OBJECTS", "has_scope", "missing_scope", "validate_scopes"]

#: Scope objects a key may name (PostHog `posthog/scopes.py`, the ones meaningful here first).
SCOPE_OBJECTS: Final[frozenset[str]] = frozenset(
    {
        "cohort",
        "person",
        "activity_log",
        "file_system",
        "project",
        "organization",
        "user",
        "feature_flag",
        "insight",
        "query",
        "event_definition",
        "property_definition",
    }
)


def validate_scopes(scopes: Iterable[str]) -> list[str]:
    """Normalised, de-duplicated scopes; ValueError naming the first invalid one."""
    out: list[str] = []
    for raw in scopes:
        scope = raw.strip()
        if not scope:
            continue
        if scope != "*":
            obj, _, action = scope.partition(":")
            if obj not in SCOPE_OBJECTS or action not in ("read", "write"):
                raise ValueError(f"invalid scope {scope!r}: expected '*' or '<object>:read|write'")
        if scope not in out:
            out.append(scope)
    return out


def has_scope(granted: Sequence[str], required: str) -> bool:
    if not granted or "*" in granted:
        return True
    if required in granted:
        return True
    obj, _, action = required.partition(":")
    return action == "read" and f"{obj}:write" in granted


def missing_scope(granted: Sequence[str], required: Iterable[str]) -> str | None:
    """The first required scope the key lacks, or None."""
    for scope in required:
        if not has_scope(granted, scope):
            return scope
    return None
