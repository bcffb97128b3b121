"""Bundles mapped by worker processes (bundles are self-contained: their references resolve
inside the bundle or to what the store already holds), rows written by the parent.

Each worker parses and maps one bundle file at a time and returns Arrow tables plus its
counters; the parent gathers them into batches of `batch_size` resources and commits each
batch atomically, keeping the last version of a row whose key repeats inside a batch.
Memory stays flat: at most `2 * workers` files are in flight.
"""

from __future__ import annotations

import multiprocessing as mp
from collections import Counter, deque
from typing import Any

import numpy as np
import pyarrow as pa

from passerelle.ingest.rows import ROW_KEYS
from passerelle.ingest.sources import SourceFile

_WORKER: Any = None


def _init(parent_state: dict[str, Any]) -> None:
    from passerelle.ingest.context import Context
    from passerelle.ingest.pipeline import FhirIngest, IngestReport, QuarantineFile

    global _WORKER
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
    _WORKER = w


def _one_file(f: SourceFile) -> dict[str, Any]:
    w = _WORKER
    ctx = w.ctx
    w._bundle_file(f)
    rep = w.report
    out = {
        "tables": ctx.batch.to_arrow(),
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
    # reset per-file state; the bundle's own directory ids are forgotten (self-contained)
    from passerelle.ingest.pipeline import IngestReport
    from passerelle.ingest.vocab import Coverage

    w.report = IngestReport(site=rep.site)
    w.quarantine.captured = []
    ctx.batch.tables.clear()
    ctx.batch.resources = 0
    ctx.coverage = Coverage()
    ctx.persons_touched = set()
    ctx.notes = Counter()
    ctx.known.difference_update(ctx.added)
    ctx.added = []
    ctx.identifiers = {}
    ctx.codes = {}
    ctx.local = {}  # also forgets the references resolved in this file
    return out


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


def ingest_bundles(run, bundles: list[SourceFile]) -> None:
    """Map `bundles` in `run.workers` processes; write through `run` (a FhirIngest)."""
    run._flush()
    state = {
        "site": run.site,
        "vocab": run.ctx.vocab,
        "pseudo": run.pseudo,
        "known": run.ctx.known,
    }
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    pending: dict[str, list[pa.Table]] = {}
    in_batch = 0
    rep = run.report

    def commit() -> None:
        nonlocal pending, in_batch
        if pending:
            tables = {
                t: _dedupe(t, pa.concat_tables(parts, promote_options="default"))
                for t, parts in pending.items()
            }
            run.store.write_batches(tables, ROW_KEYS)
            for t, data in tables.items():
                rep.rows[t] += data.num_rows
            rep.batches += 1
        pending, in_batch = {}, 0

    def results(pool):
        window: deque = deque()
        for f in bundles:
            window.append(pool.apply_async(_one_file, (f,)))
            if len(window) >= 2 * run.workers:
                yield window.popleft().get()
        while window:
            yield window.popleft().get()

    with mp.get_context(method).Pool(run.workers, initializer=_init, initargs=(state,)) as pool:
        for res in results(pool):
            for t, data in res["tables"].items():
                pending.setdefault(t, []).append(data)
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
