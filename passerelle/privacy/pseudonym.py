"""Pseudonyms and date shifts for extracts: keyed, per project, unlinkable across projects.

- The node holds one master key (32 random bytes) in a file created with mode 0600; a file
  readable by group or others is refused. The key is never logged nor put in a message.
- A project's key is derived from the master key with HKDF-SHA256 (`cryptography`), the
  project id as `info`: two projects get independent keys, so the same patient's pseudonyms
  in two projects cannot be linked without the master key.
- A person's pseudonym is HMAC-SHA256(project key, "person:" + id): its first 16 bytes in
  hex (128 bits). Bytes 16-23 of the same MAC give the person's date shift, a whole number of
  days in [-N, N] without 0: the same for every date of that person in that project, so
  intervals within a person are kept, and unpredictable without the key.

Speed: the HMAC's inner and outer SHA-256 states are computed once per project and copied per
id (two compressions per id), with OpenSSL's SHA-256 (hashlib: it uses the CPU's SHA
instructions where there are some, and is as fast as CPython's own without them); the
per-id steps (copy, update, digest) are C methods driven by `map`, with no Python bytecode
per id; each distinct id is hashed once, and large batches are split across processes.
"""

from __future__ import annotations

import binascii
import hashlib
import os
import stat
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from itertools import repeat
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from passerelle.errors import ConfigError

MASTER_KEY_BYTES = 32
HKDF_SALT = b"passerelle/pseudonym/v1"
PSEUDONYM_BYTES = 16
#: Batches larger than this are hashed by several processes (this one and workers - 1 more).
PARALLEL_THRESHOLD = 400_000
#: Ids hashed per step: bounds the hash objects alive at once (about 16 MB).
BATCH = 16_384


def create_master_key(path: str | Path) -> Path:
    """Write a new random master key to `path` (mode 0600); refuse to overwrite one."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(f"key file {p} already exists; it is never overwritten") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(os.urandom(MASTER_KEY_BYTES))
    os.chmod(p, 0o600)
    return p


def load_master_key(path: str | Path, create: bool = False) -> bytes:
    """The master key in `path` (created when absent and `create`); refused if others can read it."""
    p = Path(path)
    if not p.exists():
        if not create:
            raise ConfigError(f"pseudonym master key {p} does not exist")
        create_master_key(p)
    mode = stat.S_IMODE(p.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(
            f"key file {p} is readable by group or others (mode {mode:o}); run chmod 600 on it"
        )
    key = p.read_bytes()
    if len(key) != MASTER_KEY_BYTES:
        raise ConfigError(f"key file {p} does not hold a {MASTER_KEY_BYTES}-byte key")
    return key


def project_key(master_key: bytes, project_id: str) -> bytes:
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=HKDF_SALT,
        info=b"project:" + project_id.encode("utf-8"),
    )
    return hkdf.derive(master_key)


def _pads(key: bytes) -> tuple[bytes, bytes]:
    block = (
        key.ljust(64, b"\0") if len(key) <= 64 else hashlib.sha256(key).digest().ljust(64, b"\0")
    )
    return bytes(b ^ 0x36 for b in block), bytes(b ^ 0x5C for b in block)


def _text(value: object) -> bytes:
    return str(value).encode("utf-8")


def _macs(args: tuple[bytes, bytes, Sequence[int] | Sequence[str], bool]) -> bytes:
    """HMAC-SHA256 of b"person:<id>" for each id, the 32-byte MACs concatenated.

    `numeric`: every id is an int (written in decimal), else each is written as text."""
    ipad, opad, ids, numeric = args
    inner = hashlib.sha256(ipad + b"person:")
    outer = hashlib.sha256(opad)
    kind = type(inner)
    copy, update, digest = kind.copy, kind.update, kind.digest
    message = b"%d".__mod__ if numeric else _text
    parts: list[bytes] = []
    for start in range(0, len(ids), BATCH):
        batch = ids[start : start + BATCH]
        inners = list(map(copy, repeat(inner, len(batch))))
        deque(map(update, inners, map(message, batch)), maxlen=0)
        outers = list(map(copy, repeat(outer, len(batch))))
        deque(map(update, outers, map(digest, inners)), maxlen=0)
        parts.append(b"".join(map(digest, outers)))
    return b"".join(parts)


def _split(macs: bytes) -> tuple[pa.Array, np.ndarray]:
    """(hex pseudonyms from bytes 0-15, 64-bit shift seeds from bytes 16-23)."""
    raw = np.frombuffer(macs, dtype=np.uint8).reshape(-1, 32)
    n = raw.shape[0]
    text = binascii.hexlify(raw[:, :PSEUDONYM_BYTES].tobytes())  # 32 hex characters per id
    width = 2 * PSEUDONYM_BYTES
    offsets = np.arange(0, n * width + 1, width, dtype=np.int32)
    names = pa.StringArray.from_buffers(n, pa.py_buffer(offsets.tobytes()), pa.py_buffer(text))
    seeds = np.ascontiguousarray(raw[:, 16:24]).view(">u8").reshape(-1).astype(np.uint64)
    return names, seeds


class Pseudonymizer:
    """Pseudonyms and date shifts of one project."""

    def __init__(self, key: bytes, max_shift_days: int = 180, workers: int | None = None):
        self._ipad, self._opad = _pads(key)
        self.max_shift_days = max_shift_days
        self.workers = workers or min(4, os.cpu_count() or 1)

    @classmethod
    def for_project(
        cls,
        master_key: bytes,
        project_id: str,
        max_shift_days: int = 180,
        workers: int | None = None,
    ) -> Pseudonymizer:
        return cls(project_key(master_key, project_id), max_shift_days, workers)

    def __repr__(self) -> str:  # never show key material
        return f"Pseudonymizer(max_shift_days={self.max_shift_days})"

    def _run(self, ids: list[int] | list[str], numeric: bool) -> tuple[pa.Array, np.ndarray]:
        if len(ids) < PARALLEL_THRESHOLD or self.workers < 2:
            return _split(_macs((self._ipad, self._opad, ids, numeric)))
        step = -(-len(ids) // self.workers)
        parts = [
            (self._ipad, self._opad, ids[i : i + step], numeric) for i in range(0, len(ids), step)
        ]
        # this process hashes the first share while workers - 1 others hash the rest
        with ProcessPoolExecutor(len(parts) - 1) as pool:
            rest = pool.map(_macs, parts[1:])
            first = _macs(parts[0])
            return _split(b"".join([first, *rest]))

    def _shifts(self, seeds: np.ndarray) -> np.ndarray:
        n = self.max_shift_days
        if n == 0:
            return np.zeros(len(seeds), dtype=np.int64)
        r = (seeds % np.uint64(2 * n)).astype(np.int64)  # 0 .. 2n-1
        return np.where(r < n, r - n, r - n + 1)  # -n .. -1, 1 .. n

    def map(self, ids: pa.Array | pa.ChunkedArray | Sequence[int]) -> tuple[pa.Array, pa.Array]:
        """(pseudonym, shift in days) for each id; each distinct id is hashed once."""
        arr = ids if isinstance(ids, pa.ChunkedArray | pa.Array) else pa.array(ids, pa.int64())
        arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
        if arr.null_count:
            raise ValueError("ids to pseudonymise must not be null")
        values = arr.to_numpy(zero_copy_only=False)
        if values.dtype.kind in "iu":
            unique, inverse = np.unique(values, return_inverse=True)
            names, seeds = self._run(unique.tolist(), numeric=True)
            index = pa.array(inverse.reshape(-1).astype(np.int64))
        else:
            unique_arr = pc.unique(arr)
            names, seeds = self._run(unique_arr.to_pylist(), numeric=False)
            index = pc.index_in(arr, value_set=unique_arr)
        return names.take(index), pa.array(self._shifts(seeds), pa.int64()).take(index)

    def pseudonyms(self, ids) -> pa.Array:
        return self.map(ids)[0]

    def date_shifts(self, ids) -> pa.Array:
        return self.map(ids)[1]

    def apply(
        self,
        table: pa.Table,
        id_column: str = "person_id",
        pseudonym_column: str = "pseudonym",
        keep_free_text: bool = False,
        free_text_columns: Sequence[str] = (),
    ) -> pa.Table:
        """Replace the id by its pseudonym, shift every date/timestamp column by the person's
        shift, and drop free-text columns (named, or `*_source_value` / `*_text` / `note*`)."""
        names, shifts = self.map(table.column(id_column))
        out = table.drop_columns([id_column])
        for name in list(out.column_names):
            col = out.column(name)
            if not keep_free_text and _is_free_text(name, col.type, free_text_columns):
                out = out.drop_columns([name])
                continue
            if pa.types.is_date(col.type) or pa.types.is_timestamp(col.type):
                out = out.set_column(out.column_names.index(name), name, shift_dates(col, shifts))
        return out.add_column(0, pseudonym_column, names)


def _is_free_text(name: str, type_: pa.DataType, named: Sequence[str]) -> bool:
    if name in named:
        return True
    lowered = name.lower()
    text_like = pa.types.is_string(type_) or pa.types.is_large_string(type_)
    return text_like and (
        lowered.endswith(("_source_value", "_text", "_note", "_comment"))
        or lowered.startswith("note")
    )


def shift_dates(col: pa.ChunkedArray | pa.Array, shifts: pa.Array) -> pa.Array:
    """Add `shifts` days to each date or timestamp (nulls stay null)."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if pa.types.is_date(arr.type):
        days = arr.cast(pa.date32()).cast(pa.int32()).cast(pa.int64())
        return pc.add(days, shifts).cast(pa.int32()).cast(pa.date32())
    unit = arr.type.unit
    per_day = {"s": 86_400, "ms": 86_400_000, "us": 86_400_000_000, "ns": 86_400_000_000_000}
    delta = pc.multiply(shifts, per_day[unit])
    return pc.add(arr.cast(pa.int64()), delta).cast(arr.type)
