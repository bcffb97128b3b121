"""Errors of the single window; each carries the HTTP status one handler renders."""

from __future__ import annotations

from passerelle.errors import NotFound, UserError

__all__ = [
    "Conflict",
    "Forbidden",
    "Invalid",
    "NotFound",
    "TooManyAttempts",
    "Unauthenticated",
]


class Unauthenticated(UserError):
    """No credentials, or credentials that are wrong, expired or revoked."""

    http_status = 401


class Forbidden(UserError):
    """The caller is known but their role or organisation does not allow this."""

    http_status = 403


class Conflict(UserError):
    """The object's current state does not allow this (e.g. a transition not in the table)."""

    http_status = 409


class Invalid(UserError):
    """A field the caller sent is wrong; the message names the field."""

    http_status = 422


class TooManyAttempts(UserError):
    """Login throttling: too many failures for this account in the window."""

    http_status = 429
