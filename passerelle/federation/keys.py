"""Ed25519 key pairs: generation, key files, key ids and trust lists.

A private key is written as unencrypted PKCS#8 PEM with mode 0600 and is never printed or
logged; a public key as SubjectPublicKeyInfo PEM. In a TOML trust list a public key may also be
given inline as the base64 of its 32 raw bytes (what `passerelle keys generate` prints).
A key id is the first 16 hex digits of the SHA-256 of the raw public key.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from passerelle.federation.errors import KeyFileError

PRIVATE_SUFFIX = ".key"
PUBLIC_SUFFIX = ".pub"


def raw_public(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id_of(public: Ed25519PublicKey) -> str:
    return hashlib.sha256(raw_public(public)).hexdigest()[:16]


def public_b64(public: Ed25519PublicKey) -> str:
    return base64.b64encode(raw_public(public)).decode("ascii")


@dataclass(frozen=True)
class PublicKey:
    """A trusted party's public key, known by name and key id."""

    name: str
    key: Ed25519PublicKey

    @cached_property
    def key_id(self) -> str:
        return key_id_of(self.key)

    def verify(self, signature: bytes, message: bytes) -> bool:
        try:
            self.key.verify(signature, message)
        except InvalidSignature:
            return False
        return True


class KeyPair:
    """This party's own key pair. `repr` never shows the private key."""

    def __init__(self, name: str, private: Ed25519PrivateKey) -> None:
        self.name = name
        self._private = private
        self.public = PublicKey(name, private.public_key())

    @property
    def key_id(self) -> str:
        return self.public.key_id

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)

    def __repr__(self) -> str:
        return f"KeyPair(name={self.name!r}, key_id={self.key_id!r})"

    @classmethod
    def generate(cls, name: str) -> KeyPair:
        return cls(name, Ed25519PrivateKey.generate())

    def write(self, folder: Path) -> tuple[Path, Path]:
        """Write NAME.key (0600, created with that mode) and NAME.pub; refuse to overwrite."""
        folder.mkdir(parents=True, exist_ok=True)
        private_path = folder / f"{self.name}{PRIVATE_SUFFIX}"
        public_path = folder / f"{self.name}{PUBLIC_SUFFIX}"
        for p in (private_path, public_path):
            if p.exists():
                raise KeyFileError(f"{p} already exists; remove it first to make a new key")
        pem = self._private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        os.chmod(private_path, 0o600)
        public_path.write_bytes(
            self.public.key.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        return private_path, public_path

    @classmethod
    def load(cls, path: Path, name: str | None = None) -> KeyPair:
        path = Path(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise KeyFileError(f"private key file {path} does not exist") from None
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise KeyFileError(
                f"private key file {path} is readable by others (mode {mode:o}); chmod 600 it"
            )
        try:
            private = serialization.load_pem_private_key(data, password=None)
        except ValueError:
            raise KeyFileError(f"{path} is not a PEM private key") from None
        if not isinstance(private, Ed25519PrivateKey):
            raise KeyFileError(f"{path} is not an Ed25519 private key")
        return cls(name or path.stem, private)


def load_public(name: str, *, inline: str | None = None, path: Path | None = None) -> PublicKey:
    """A public key from inline base64 (32 raw bytes) or from a PEM file."""
    if inline:
        try:
            raw = base64.b64decode(inline, validate=True)
            return PublicKey(name, Ed25519PublicKey.from_public_bytes(raw))
        except ValueError:
            raise KeyFileError(
                f"public key of {name}: not base64 of 32 raw Ed25519 bytes"
            ) from None
    if path is None:
        raise KeyFileError(f"public key of {name}: give public_key or public_key_file")
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise KeyFileError(f"public key file {path} of {name} does not exist") from None
    try:
        public = serialization.load_pem_public_key(data)
    except ValueError:
        raise KeyFileError(f"{path} is not a PEM public key") from None
    if not isinstance(public, Ed25519PublicKey):
        raise KeyFileError(f"{path} is not an Ed25519 public key")
    return PublicKey(name, public)


class TrustList:
    """Public keys this party accepts, by key id."""

    def __init__(self, keys: list[PublicKey] | None = None) -> None:
        self._by_id: dict[str, PublicKey] = {}
        for k in keys or []:
            self.add(k)

    def add(self, key: PublicKey) -> None:
        self._by_id[key.key_id] = key

    def get(self, key_id: str) -> PublicKey | None:
        return self._by_id.get(key_id)

    def __len__(self) -> int:
        return len(self._by_id)
