"""Bundles mapped by worker processes (bundles are self-contained: their references resolve
inside the bundle or to what the store already holds), rows written by the parent.

The bundle files are cut into groups of consecutive files (about `batch_size / workers`
resources each, at most GROUP_MAX_RESOURCES, estimated from the file sizes). A worker parses
and maps one group, keeps the last version of each row of the group (as one process does
inside a batch), converts its rows to Arrow once per table and writes them as Arrow IPC
files in a temporary directory (shared memory when the system has one); it returns only the
file names and its counters. The parent memory-maps those files (no copy, no pickling of
rows), takes the groups in file order into batches of `batch_size` resources, keeps the last
version of a row whose key repeats inside a batch, and commits each batch atomically. Memory
stays flat: at most `2 * workers` groups are in flight.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing as mp
import os
import shutil
import tempfile
from collections import Counter, deque
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from passerelle.ingest.rows import ROW_KEYS
from passerelle.ingest.sources import SourceFile

_WORKER: Any = None
_SPOOL = ""  # the directory of the IPC files (worker processes)
_SPOOL_FALLBACK = ""  # on disk, when the spool (in /dev/shm) refuses a file

# Source bytes per resource, to size the groups (the SMART bundles: about 3,600 bytes per
# resource uncompressed; gzip files are counted at GZIP_RATIO times their size).
BYTES_PER_RESOURCE = 3_000
GZIP_RATIO = 8
# At most this many resources per group whatever the batch size, so the IPC files in flight
# (about 150 bytes per resource, 2 * workers groups) stay small in a small /dev/shm.
GROUP_MAX_RESOURCES = 25_000


def _init(parent_state: dict[str, Any]) -> None:
    from passerelle.ingest.context import Context
    from passerelle.ingest.pipeline import FhirIngest, IngestReport, QuarantineFile

    global _WORKER, _SPOOL, _SPOOL_FALLBACK
    w = FhirIngest.__new__(FhirIngest)
    w.store = None
    w.batch_size = 1 << 62  # the parent decides when to commit
    w.progress = None
    w.workers = 1
    w.report = IngestReport(site=parent_state["site"])
    w.quarantine = QuarantineFile(None, capture=True)
    w.ctx = Context(parent_state["site"], parent_state["vocab"], parent_state["pseudo"])
    w.ctx.known = set(parent_state["known"])
    w.ctx.added = []
    _SPOOL = parent_state["spool"]
    _SPOOL_FALLBACK = parent_state["spool_fallback"]
    _WORKER = w
    # What the worker inherited (modules, vocabulary, known ids) is never garbage: kept out
    # of the collector's passes (callgrind, one copy in one process: -1.8 % instructions).
    gc.freeze()


def _write_ipc(path: str, table: pa.Table) -> None:
    with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


def _spool_table(name: str, data: pa.Table) -> str:
    """Write `data` into the spool; if that fails (a full or tiny /dev/shm: Docker's default is
    64 MB), into a folder of its own in the temporary directory, which the parent removes."""
    path = os.path.join(_SPOOL, name)
    try:
        _write_ipc(path, data)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(path)
        fallback = os.path.join(_SPOOL_FALLBACK, name)
        _write_ipc(fallback, data)
        return fallback
    return path


def _group(task: tuple[int, list[SourceFile]]) -> dict[str, Any]:
    """Map the files of one group; rows to IPC files, counters returned."""
    from passerelle.ingest.pipeline import IngestReport
    from passerelle.ingest.vocab import Coverage

    index, files = task
    w = _WORKER
    ctx = w.ctx
    for f in files:
        w._bundle_file(f)
        # the bundle's own directory ids and references are forgotten (self-contained)
        ctx.known.difference_update(ctx.added)
        ctx.added = []
        ctx.identifiers = {}
        ctx.codes = {}
        ctx.local = {}  # also forgets the references resolved in this file
    tables = {}
    for t, data in ctx.batch.to_arrow().items():
        tables[t] = _spool_table(f"{index}-{t}.arrow", data)
    rep = w.report
    out = {
        "tables": tables,
        "resources": ctx.batch.resources,
        "read": rep.read,
        "loaded": rep.loaded,
        "skipped": rep.skipped,
        "quarantined": rep.quarantined,
        "reasons": rep.quarantine_reasons,
        "quarantine": w.quarantine.captured,
        "coverage": ctx.coverage,
        "persons": ctx.persons_touched,
        "notes": ctx.notes,
    }
    w.report = IngestReport(site=rep.site)
    w.quarantine.captured = []
    ctx.batch.tables.clear()
    ctx.batch.resources = 0
    ctx.coverage = Coverage()
    ctx.persons_touched = set()
    ctx.notes = Counter()
    return out


def _read_ipc(path: str) -> pa.Table:
    """The table of an IPC file, memory-mapped; the file is removed (the mapping stays)."""
    with pa.memory_map(path) as source:
        table = pa.ipc.open_file(source).read_all()
    os.unlink(path)
    return table


def _dedupe(table: str, data: pa.Table) -> pa.Table:
    keys = data.column(ROW_KEYS[table]).to_numpy()
    if len(keys) < 2:
        return data
    rev = keys[::-1]
    _, idx = np.unique(rev, return_index=True)
    if len(idx) == len(keys):
        return data
    return data.take(np.sort(len(keys) - 1 - idx))


def _merge_coverage(into, part) -> None:
    into.records.update(part.records)
    into.mapped_records.update(part.mapped_records)
    for src, dst in ((part.codes, into.codes), (part.mapped_codes, into.mapped_codes)):
        for k, v in src.items():
            dst.setdefault(k, set()).update(v)


def _size(f: SourceFile) -> int:
    try:
        size = f.path.stat().st_size
    except OSError:
        return 0
    return size * GZIP_RATIO if f.path.name.endswith(".gz") else size


def groups(bundles: list[SourceFile], batch_size: int, workers: int) -> list[list[SourceFile]]:
    """Consecutive files, about batch_size / workers resources per group (by file size),
    at most GROUP_MAX_RESOURCES."""
    per_group = max(1, min(batch_size // max(1, workers), GROUP_MAX_RESOURCES))
    target = per_group * BYTES_PER_RESOURCE
    out: list[list[SourceFile]] = []
    current: list[SourceFile] = []
    size = 0
    for f in bundles:
        current.append(f)
        size += _size(f)
        if size >= target:
            out.append(current)
            current, size = [], 0
    if current:
        out.append(current)
    return out


def _spool_dir() -> str:
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        return tempfile.mkdtemp(prefix="passerelle-ingest-", dir=shm)
    return tempfile.mkdtemp(prefix="passerelle-ingest-")


def ingest_bundles(run, bundles: list[SourceFile]) -> None:
    """Map `bundles` in `run.workers` processes; write through `run` (a FhirIngest)."""
    run._flush()
    spool = _spool_dir()
    fallback = tempfile.mkdtemp(prefix="passerelle-ingest-")
    try:
        _ingest(run, bundles, spool, fallback)
    finally:
        shutil.rmtree(spool, ignore_errors=True)
        shutil.rmtree(fallback, ignore_errors=True)


def _ingest(run, bundles: list[SourceFile], spool: str, fallback: str) -> None:
    state = {
        "site": run.site,
        "vocab": run.ctx.vocab,
        "pseudo": run.pseudo,
        "known": run.ctx.known,
        "spool": spool,
        "spool_fallback": fallback,
    }
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    pending: dict[str, list[pa.Table]] = {}
    in_batch = 0
    rep = run.report

    def commit() -> None:
        nonlocal pending, in_batch
        if pending:
            tables = {}
            for t, parts in pending.items():
                data = (
                    parts[0]
                    if len(parts) == 1
                    else _dedupe(t, pa.concat_tables(parts, promote_options="default"))
                )
                tables[t] = data.combine_chunks()
            run.store.write_batches(tables, ROW_KEYS)
            for t, data in tables.items():
                rep.rows[t] += data.num_rows
            rep.batches += 1
        pending, in_batch = {}, 0

    def results(pool):
        window: deque = deque()
        for task in enumerate(groups(bundles, run.batch_size, run.workers)):
            window.append(pool.apply_async(_group, (task,)))
            if len(window) >= 2 * run.workers:
                yield window.popleft().get()
        while window:
            yield window.popleft().get()

    with mp.get_context(method).Pool(run.workers, initializer=_init, initargs=(state,)) as pool:
        for res in results(pool):
            for t, path in res["tables"].items():
                pending.setdefault(t, []).append(_read_ipc(path))
            in_batch += res["resources"]
            rep.read.update(res["read"])
            rep.loaded.update(res["loaded"])
            rep.skipped.update(res["skipped"])
            rep.quarantined.update(res["quarantined"])
            rep.quarantine_reasons.update(res["reasons"])
            for rec in res["quarantine"]:
                run.quarantine.write_record(rec)
            _merge_coverage(run.ctx.coverage, res["coverage"])
            run.ctx.persons_touched.update(res["persons"])
            run.ctx.notes.update(res["notes"])
            if run.progress is not None:
                run.progress(rep.resources, "")
            if in_batch >= run.batch_size:
                commit()
    commit()
