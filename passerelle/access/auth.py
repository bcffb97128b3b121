"""Local accounts, bearer tokens, node API keys and login throttling.

Passwords are argon2 hashes; a token or API key is shown once and only its SHA-256 is stored.
Nothing here logs a password, token or key.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from passerelle.access.enums import OrgType, Role

TOKEN_PREFIX = "pst_"
API_KEY_PREFIX = "psk_"
SESSION = "session"
API_KEY = "api_key"

_hasher = PasswordHasher()
# A hash to verify against when the account does not exist, so timing does not reveal it.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password(stored: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored or _DUMMY_HASH, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def new_secret(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user with roles in one organisation, or a node key of a producer."""

    kind: str  # "user" | "node"
    organisation_id: int
    organisation_type: OrgType
    roles: frozenset[Role]
    user_id: int | None = None
    key_id: int | None = None

    @property
    def actor(self) -> str:
        return f"user:{self.user_id}" if self.kind == "user" else f"node-key:{self.key_id}"

    def has(self, *roles: Role) -> bool:
        return bool(self.roles.intersection(roles))

    def member_of(self, organisation_id: int) -> bool:
        return self.organisation_id == organisation_id


SYSTEM_ACTOR = "system"


def throttle_window_start(now: datetime, minutes: int) -> datetime:
    return now - timedelta(minutes=minutes)
