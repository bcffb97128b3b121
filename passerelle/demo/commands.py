"""`passerelle demo` (grown by later issues)."""

from __future__ import annotations


def demo() -> None:
    """Build the demo."""
    raise SystemExit("not yet")
