"""Stable identifiers and pseudonymous source values.

Every *_id written by the ingest is a positive 63-bit integer derived from the site name and
the source resource (type, id, and a part number when one resource gives several rows), so
ingesting the same export twice writes the same ids and a corrected resource replaces its rows.

person_source_value is an HMAC-SHA256 of the patient id under a per-site key kept in
`<data_dir>/keys/ingest-<site>.key` (created on first use, mode 0600, never logged).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from hashlib import blake2b
from pathlib import Path

from passerelle.errors import ConfigError

_MASK = (1 << 63) - 1
_SITE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def check_site(site: str) -> str:
    if not _SITE_RE.match(site):
        raise ConfigError("--site must be 1-64 letters, digits, '.', '_' or '-'")
    return site


class IdMaker:
    """Stable ids for one site: `id_for("Patient", "abc")`."""

    __slots__ = ("_cache", "_prefix")
    CACHE_SIZE = 50_000  # recent ids (a patient's and an encounter's ids recur in a bundle)

    def __init__(self, site: str) -> None:
        self._prefix = f"{site}|".encode()
        self._cache: dict[tuple[str, str, int | str], int] = {}

    def id_for(self, rtype: str, rid: str, part: int | str = "") -> int:
        key = (rtype, rid, part)
        value = self._cache.get(key)
        if value is None:
            value = self.fresh(rtype, rid, part)
            if len(self._cache) >= self.CACHE_SIZE:
                self._cache.clear()
            self._cache[key] = value
        return value

    def fresh(self, rtype: str, rid: str, part: int | str = "") -> int:
        """The same id as id_for, computed without the cache (for ids that do not recur)."""
        raw = self._prefix + f"{rtype}|{rid}|{part}".encode()
        return int.from_bytes(blake2b(raw, digest_size=8).digest(), "big") & _MASK or 1


def key_path(data_dir: Path, site: str) -> Path:
    return data_dir / "keys" / f"ingest-{site}.key"


def load_or_create_key(data_dir: Path, site: str) -> bytes:
    """The site's pseudonymisation key; created with mode 0600 the first time."""
    path = key_path(data_dir, check_site(site))
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    except ValueError:
        raise ConfigError(f"key file {path} is not a hex key") from None
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = secrets.token_bytes(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it meanwhile
        return bytes.fromhex(path.read_text().strip())
    with os.fdopen(fd, "w") as fh:
        fh.write(key.hex())
    return key


class Pseudonymiser:
    """Keyed hash of a source identifier: 48 hex characters (fits VARCHAR(50))."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        self._key = key

    def __repr__(self) -> str:  # never show the key
        return "Pseudonymiser(<key>)"

    def __call__(self, value: str) -> str:
        return hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()[:48]
