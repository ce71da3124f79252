"""A key as it may be shown: masked wherever it appears (settings, tables, reprs)."""

from __future__ import annotations


def mask(secret: str | None) -> str:
    """A key as it may be shown: never more than its length class."""
    if not secret:
        return "(none)"
    return "•" * 8 + f" ({len(secret)} chars)"


class Secret(str):
    """A key held in a setting: its repr (what `%config` and tracebacks show) is masked."""

    def __repr__(self) -> str:
        return mask(self)
