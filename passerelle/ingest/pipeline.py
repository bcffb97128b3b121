"""`passerelle ingest fhir`: stream FHIR files into a CDM store, batch by batch.

Order: a first pass over NDJSON files reads the directory resources (Patient, Organization,
Practitioner, Location, Medication, Device) so references to them resolve across files;
then each bundle (its directory entries first); then the other NDJSON resources.
A batch of rows from `batch_size` resources is committed atomically; a resource that cannot
be mapped goes to the quarantine file (file, line, type, reason) and the rest goes on.
"""

from __future__ import annotations

import gc
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from passerelle.ingest import obsperiod
from passerelle.ingest.context import DIRECTORY_TYPES, Context, Quarantine, Skip
from passerelle.ingest.fhir_mappers import (
    DIRECTORY_MAPPERS,
    EVENT_MAPPERS,
    SKIPPED_STATUSES,
)
from passerelle.ingest.ids import Pseudonymiser
from passerelle.ingest.rows import ROW_KEYS, to_arrow
from passerelle.ingest.sources import R4_TYPES, SourceFile, discover, iter_lines, read_bytes
from passerelle.ingest.vocab import Vocabulary

Progress = Callable[[int, str], None]  # (resources read so far, current file name)

# Allocations between two young-generation collections of the cyclic GC while a run lasts
# (CPython's default is 700). Parsed JSON and rows are acyclic and freed by reference
# counting, so the default mostly re-scans live objects: a fifth of the CPU time of a run.
GC_YOUNG_THRESHOLD = 50_000


@contextmanager
def _fewer_gc_passes() -> Iterator[None]:
    """Raise the young-generation GC threshold for the duration, then restore it."""
    old = gc.get_threshold()
    gc.set_threshold(max(old[0], GC_YOUNG_THRESHOLD), *old[1:])
    try:
        yield
    finally:
        gc.set_threshold(*old)


@dataclass
class IngestReport:
    site: str
    files: list[str] = field(default_factory=list)
    skipped_files: list[dict[str, str]] = field(default_factory=list)
    read: Counter = field(default_factory=Counter)  # per resource type
    loaded: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    quarantined: Counter = field(default_factory=Counter)
    quarantine_reasons: Counter = field(default_factory=Counter)
    rows: Counter = field(default_factory=Counter)  # rows written per CDM table
    batches: int = 0
    vocabulary_loaded: bool = False
    coverage: list[dict[str, Any]] = field(default_factory=list)
    unmapped_records: int = 0
    notes: dict[str, int] = field(default_factory=dict)
    quarantine_file: str | None = None
    seconds: float = 0.0

    @property
    def resources(self) -> int:
        return sum(self.read.values())

    @property
    def quarantine_total(self) -> int:
        return sum(self.quarantined.values())

    def to_dict(self) -> dict[str, Any]:
        n = self.resources
        return {
            "site": self.site,
            "files": self.files,
            "skipped_files": self.skipped_files,
            "resources": n,
            "resources_per_second": round(n / self.seconds, 1) if self.seconds else None,
            "seconds": round(self.seconds, 3),
            "batches": self.batches,
            "by_resource_type": {
                t: {
                    "read": self.read[t],
                    "loaded": self.loaded[t],
                    "skipped": self.skipped[t],
                    "quarantined": self.quarantined[t],
                }
                for t in sorted(self.read)
            },
            "rows_per_table": dict(sorted(self.rows.items())),
            "quarantined": self.quarantine_total,
            "quarantined_by_reason": dict(self.quarantine_reasons.most_common()),
            "quarantine_file": self.quarantine_file,
            "vocabulary_loaded": self.vocabulary_loaded,
            "unmapped_records": self.unmapped_records,
            "mapping_coverage": self.coverage,
            "notes": self.notes,
        }


class QuarantineFile:
    """Append-only NDJSON of rejected records: file, line, resourceType, reason."""

    def __init__(self, path: Path | None, capture: bool = False) -> None:
        self.path = path
        self._fh: IO[bytes] | None = None
        self.captured: list[dict[str, Any]] | None = [] if capture else None

    def write(
        self, file: str, line: int | None, rtype: str | None, reason: str, entry: int | None
    ) -> None:
        rec = {"file": file, "line": line, "resourceType": rtype, "reason": reason}
        if entry is not None:
            rec["entry"] = entry
        if self.captured is not None:
            self.captured.append(rec)
            return
        self.write_record(rec)

    def write_record(self, rec: dict[str, Any]) -> None:
        if self.path is None:
            return
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("ab")
        self._fh.write(orjson.dumps(rec) + b"\n")

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class FhirIngest:
    def __init__(
        self,
        store: Any,
        site: str,
        pseudo: Pseudonymiser,
        quarantine: Path | None = None,
        batch_size: int = 20_000,
        progress: Progress | None = None,
        workers: int = 1,
    ) -> None:
        self.store = store
        self.site = site
        self.pseudo = pseudo
        self.batch_size = batch_size
        self.progress = progress
        self.workers = workers
        self.report = IngestReport(site=site)
        self.quarantine = QuarantineFile(quarantine)
        self.report.quarantine_file = str(quarantine) if quarantine else None
        store.init()
        vocab = Vocabulary.from_store(store)
        self.report.vocabulary_loaded = vocab.loaded
        self.ctx = Context(site, vocab, pseudo)
        self._preload_known()

    def _preload_known(self) -> None:
        """Ids already in the store count as existing reference targets (a later run may send
        only the resources that changed)."""
        for table, col in (
            ("person", "person_id"),
            ("provider", "provider_id"),
            ("care_site", "care_site_id"),
            ("location", "location_id"),
        ):
            for (value,) in self.store.query(
                f"SELECT {col} FROM {self.store.qualified(table)}"
            ).rows:
                self.ctx.known.add(int(value))

    # -- driving ---------------------------------------------------------------------------
    def run(self, paths: list[Path]) -> IngestReport:
        started = time.perf_counter()
        files, skipped = discover(paths)
        self.report.files = [f.name for f in files]
        self.report.skipped_files = [{"file": f, "reason": r} for f, r in skipped]
        ndjson = [f for f in files if f.kind == "ndjson"]
        with _fewer_gc_passes():
            try:
                for f in ndjson:
                    if f.type_hint is None or f.type_hint in DIRECTORY_TYPES:
                        self._ndjson(f, first_pass=True)
                bundles = [f for f in files if f.kind == "bundle"]
                if self.workers > 1 and len(bundles) > 1:
                    from passerelle.ingest.parallel import ingest_bundles

                    ingest_bundles(self, bundles)
                else:
                    for f in bundles:
                        self._bundle_file(f)
                for f in ndjson:
                    if (
                        f.type_hint is None
                        or f.type_hint not in DIRECTORY_TYPES
                        or f.type_hint == "Device"
                    ):
                        self._ndjson(f, first_pass=False)
                self._flush()
                self._observation_periods()
            finally:
                self.quarantine.close()
        r = self.report
        r.coverage = self.ctx.coverage.to_list()
        r.unmapped_records = self.ctx.coverage.unmapped_records
        r.notes = dict(self.ctx.notes)
        r.seconds = time.perf_counter() - started
        return r

    def _ndjson(self, f: SourceFile, first_pass: bool) -> None:
        """One pass over an NDJSON file.

        A file named for a directory type other than Device (Patient.000.ndjson) is read
        once, in the first pass, and everything in it is handled then. A mixed file or a
        Device file is read twice: directory resources in the first pass, the rest (and the
        rejects) in the second. Other files are read in the second pass only.
        """
        ctx = self.ctx
        ctx.local = {}
        single = f.type_hint in DIRECTORY_TYPES and f.type_hint != "Device"
        rejects = single or not first_pass
        for lineno, raw in iter_lines(f.path):
            try:
                res = orjson.loads(raw)
            except orjson.JSONDecodeError:
                if rejects:
                    self._reject(f.name, lineno, None, "broken JSON line", None)
                continue
            if not isinstance(res, dict):
                if rejects:
                    self._reject(f.name, lineno, None, "line is not a JSON object", None)
                continue
            rtype = res.get("resourceType")
            directory = rtype in DIRECTORY_TYPES
            if first_pass and directory:
                self._one(f.name, lineno, None, res, first_pass=True)
                if not (single and rtype == "Device"):
                    continue
            if first_pass and not single:
                continue
            if rtype == "Bundle":
                self._bundle(f.name, res, lineno)
            elif not directory or rtype == "Device":
                self._one(f.name, lineno, None, res, first_pass=False)

    def _bundle_file(self, f: SourceFile) -> None:
        try:
            doc = orjson.loads(read_bytes(f.path))
        except (orjson.JSONDecodeError, OSError, EOFError):
            self._reject(f.name, None, None, "file is not valid JSON", None)
            return
        if isinstance(doc, dict) and doc.get("resourceType") == "Bundle":
            self._bundle(f.name, doc, None)
        elif isinstance(doc, dict):
            self.ctx.local = {}
            self._one(f.name, None, None, doc, first_pass=True)
            self._one(f.name, None, None, doc, first_pass=False)
        else:
            self._reject(f.name, None, None, "file holds no FHIR resource", None)

    def _bundle(self, name: str, doc: dict[str, Any], line: int | None) -> None:
        """Directory entries first (so references to them resolve), then the others in
        bundle order; one look at each entry sorts it into the two passes."""
        local: dict[str, tuple[str, str]] = {}
        first: list[tuple[int, dict[str, Any]]] = []
        second: list[tuple[int, dict[str, Any] | None]] = []
        i = -1
        for e in doc.get("entry") or ():
            if not isinstance(e, dict):
                continue
            i += 1
            res = e.get("resource")
            if not isinstance(res, dict):
                if "request" not in e:
                    second.append((i, None))  # rejected in its place in the second pass
                continue
            rtype = res.get("resourceType")
            rid = res.get("id")
            if isinstance(rid, str):
                # an entry without a resourceType is rejected by _one; a reference to it
                # resolves to a type no mapper expects, as None did before
                key = (rtype if isinstance(rtype, str) else "", rid)
                full = e.get("fullUrl")
                if isinstance(full, str):
                    local[full] = key
                    if "/" in full and not full.startswith("urn:"):
                        local["/".join(full.rsplit("/", 2)[-2:])] = key
            if isinstance(rtype, str) and rtype in DIRECTORY_TYPES:
                first.append((i, res))
                if rtype == "Device":
                    second.append((i, res))
            else:
                second.append((i, res))
        ctx = self.ctx
        ctx.local = local
        one = self._one
        for i, res in first:
            one(name, line, i, res, True)
        for i, maybe in second:
            if maybe is None:
                self._reject(name, line, None, "bundle entry without resource", i)
            else:
                one(name, line, i, maybe, False)
        ctx.local = {}

    def _one(
        self, name: str, line: int | None, entry: int | None, res: dict, first_pass: bool
    ) -> None:
        ctx = self.ctx
        rep = self.report
        rtype = res.get("resourceType")
        if not isinstance(rtype, str) or rtype not in R4_TYPES:
            rep.read["(unknown)"] += 1
            self._reject(name, line, None, "missing or unknown resourceType", entry, "(unknown)")
            return
        directory = rtype in DIRECTORY_TYPES
        if first_pass:
            count = True
            count_loaded = rtype != "Device"
            mapper = DIRECTORY_MAPPERS.get(rtype)
        else:
            count = not directory
            count_loaded = count or rtype == "Device"
            mapper = EVENT_MAPPERS.get(rtype)
        if count:
            rep.read[rtype] += 1
            if self.progress is not None:
                self._tick(name)
        if mapper is None:
            if count:
                rep.skipped[rtype] += 1
            return
        rid = res.get("id")
        if not isinstance(rid, str) or not rid:
            self._reject(name, line, rtype, "missing id", entry, rtype)
            return
        if res.get("status") in SKIPPED_STATUSES:
            if count:
                rep.skipped[rtype] += 1
            return
        contained = res.get("contained")
        if contained:
            ctx.contained = {c.get("id"): c for c in contained if isinstance(c, dict)}
        elif ctx.contained:
            ctx.contained = {}
        try:
            mapper(res, ctx)
        except Skip:
            if count_loaded:
                rep.skipped[rtype] += 1
            return
        except Quarantine as exc:
            self._reject(name, line, rtype, str(exc), entry, rtype)
            return
        except (KeyError, TypeError, ValueError, AttributeError):
            self._reject(name, line, rtype, "malformed resource", entry, rtype)
            return
        if first_pass:
            ctx.register(rtype, res)
        if count_loaded:
            rep.loaded[rtype] += 1
        batch = ctx.batch
        batch.resources += 1
        if batch.resources >= self.batch_size:
            self._flush()

    def _reject(self, name, line, rtype, reason, entry, counted: str | None = None) -> None:
        if counted:
            self.report.quarantined[counted] += 1
        else:
            self.report.quarantined["(unreadable)"] += 1
            self.report.read["(unreadable)"] += 1
        self.report.quarantine_reasons[reason] += 1
        self.quarantine.write(name, line, rtype, reason, entry)

    def _tick(self, name: str) -> None:
        if self.progress is not None and self.report.resources % 1000 == 0:
            self.progress(self.report.resources, name)

    # -- writing ---------------------------------------------------------------------------
    def _flush(self) -> None:
        batch = self.ctx.batch
        if len(batch):
            tables = batch.to_arrow()
            self.store.write_batches(tables, ROW_KEYS)
            self.report.rows.update(batch.counts())
            self.report.batches += 1
        batch.tables.clear()
        batch.resources = 0

    def _observation_periods(self) -> None:
        if not self.ctx.persons_touched:
            return
        rows = obsperiod.derive(self.store, self.ctx.ids, self.ctx.persons_touched)
        if rows:
            self.store.write_batches(
                {"observation_period": to_arrow("observation_period", rows)}, ROW_KEYS
            )
            self.report.rows["observation_period"] += len(rows)


def iter_files(paths: list[Path]) -> Iterator[SourceFile]:
    files, _ = discover(paths)
    yield from files
