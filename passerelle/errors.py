"""One root exception; user-facing errors print one line, without a traceback."""

from __future__ import annotations


class PasserelleError(Exception):
    """Root of every error Passerelle raises on purpose."""

    exit_code = 1
    http_status = 500


class UserError(PasserelleError):
    """A mistake the user can fix: printed as one line, never with a traceback."""

    exit_code = 2
    http_status = 400


class ConfigError(UserError):
    """A setting, URL or file the user gave is wrong."""


class StoreUnavailable(UserError):
    """The store named by a URL cannot be reached (server down, missing Java, ...)."""


class InvalidStoreURL(ConfigError):
    """A store URL with an unknown scheme or a malformed part."""


class LoadRefused(UserError):
    """A load that would overwrite data without --replace, or names no loadable file."""

    exit_code = 1


class NotFound(UserError):
    http_status = 404


class Unsupported(PasserelleError):
    """An engine lacks a capability a query needs."""

    exit_code = 2
    http_status = 422
