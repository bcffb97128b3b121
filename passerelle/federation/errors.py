"""Federation errors: each carries the HTTP status and a short machine-readable code."""

from __future__ import annotations

from passerelle.errors import PasserelleError, UserError


class FederationError(PasserelleError):
    code = "federation_error"


class Refused(UserError):
    """A node refuses an envelope. The message is safe to show: it names no patient value."""

    http_status = 403
    code = "refused"

    def __init__(self, message: str, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        if code:
            self.code = code
        if status:
            self.http_status = status


class BadSignature(Refused):
    http_status = 401
    code = "bad_signature"


class KeyFileError(UserError):
    code = "key_file"
