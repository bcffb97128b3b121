"""Per-run state shared by the FHIR mappers: ids, vocabulary, reference indexes, the batch."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime
from typing import Any

from passerelle.ingest import fhirtime
from passerelle.ingest.ids import IdMaker, Pseudonymiser
from passerelle.ingest.rows import Batch
from passerelle.ingest.vocab import Coverage, Mapped, Vocabulary

# Resource types read before the others (a first pass over NDJSON, first within a bundle):
# they are the targets of references and produce no reference of their own that must resolve.
DIRECTORY_TYPES = frozenset(
    {"Patient", "Organization", "Practitioner", "Location", "Medication", "Device"}
)
# Types whose existence is checked when referenced (ids of what was loaded or is in the store).
CHECKED_TYPES = frozenset({"Patient", "Organization", "Practitioner", "Location"})


class Quarantine(Exception):
    """The resource goes to the quarantine file; the reason never holds a patient value."""


class Skip(Exception):
    """The resource is read but gives no row (e.g. status entered-in-error)."""


class Context:
    def __init__(self, site: str, vocab: Vocabulary, pseudo: Pseudonymiser) -> None:
        self.ids = IdMaker(site)
        self.vocab = vocab
        self.pseudo = pseudo
        self.coverage = Coverage()
        self.batch = Batch()
        # ids of loaded targets (CHECKED_TYPES), keyed by (type, id) → stable id
        self.known: set[int] = set()
        # conditional references: "Type?system|value" and "Type?value" → resource id
        self.identifiers: dict[str, str] = {}
        # codes of Medication / Device resources, for references to them: (type, id) → CC
        self.codes: dict[tuple[str, str], Any] = {}
        self.persons_touched: set[int] = set()
        self.notes: Counter = Counter()  # e.g. deceased without a date
        self._local: dict[str, tuple[str, str]] = {}  # fullUrl → (type, id), current bundle
        # reference text → (type, id, stable id) of what it resolved to; valid while `local`,
        # the identifiers and the known ids stay as they were (cleared when they change)
        self._targets: dict[str, tuple[str, str, int]] = {}
        self.contained: dict[str | None, Any] = {}  # contained resources by id
        self.added: list[int] | None = None  # ids registered since reset (worker processes)

    @property
    def local(self) -> dict[str, tuple[str, str]]:
        """fullUrl → (type, id) of the current bundle's entries."""
        return self._local

    @local.setter
    def local(self, value: dict[str, tuple[str, str]]) -> None:
        self._local = value
        self._targets = {}

    # -- ids -------------------------------------------------------------------------------
    def id(self, rtype: str, rid: str, part: int | str = "") -> int:
        return self.ids.id_for(rtype, rid, part)

    def row_id(self, rtype: str, rid: str, part: int | str = "") -> int:
        """The stable id of a row nothing else refers to (not kept in the recent-ids cache)."""
        return self.ids.fresh(rtype, rid, part)

    def register(self, rtype: str, res: dict[str, Any]) -> None:
        """Index a directory resource so references to it resolve."""
        rid = res.get("id")
        if not isinstance(rid, str):
            return
        if self._targets:
            self._targets = {}
        if rtype in CHECKED_TYPES:
            sid = self.ids.id_for(rtype, rid)
            if self.added is not None and sid not in self.known:
                self.added.append(sid)
            self.known.add(sid)
        for ident in res.get("identifier") or ():
            if isinstance(ident, dict) and isinstance(ident.get("value"), str):
                value = ident["value"]
                system = ident.get("system")
                if system:
                    self.identifiers[f"{rtype}?{system}|{value}"] = rid
                self.identifiers.setdefault(f"{rtype}?{value}", rid)

    # -- references ------------------------------------------------------------------------
    def resolve(self, ref: Any, where: str) -> tuple[str, str]:
        """(type, id) of a Reference; Quarantine when it names nothing that exists."""
        if not isinstance(ref, dict):
            raise Quarantine(f"malformed reference at {where}")
        r = ref.get("reference")
        if not isinstance(r, str):
            raise Quarantine(f"reference without target at {where}")
        if r.startswith("#"):
            return "#", r[1:]
        if r.startswith("urn:"):
            hit = self._local.get(r)
            if hit is None:
                raise Quarantine(f"unresolved reference at {where}")
            return hit
        if "?" in r:
            rtype, _, query = r.partition("?")
            rtype = rtype.rsplit("/", 1)[-1]
            value = None
            for part in query.split("&"):
                name, _, v = part.partition("=")
                if name == "identifier":
                    value = v
            rid = self.identifiers.get(f"{rtype}?{value}") if value else None
            if rid is None:
                raise Quarantine(f"unresolved conditional reference at {where}")
            return rtype, rid
        hit = self._local.get(r)
        if hit is not None:
            return hit
        parts = r.split("/")
        if len(parts) >= 4 and parts[-2] == "_history":
            parts = parts[:-2]
        if len(parts) < 2 or not parts[-1]:
            raise Quarantine(f"malformed reference at {where}")
        rtype, rid = parts[-2], parts[-1]
        if rtype in CHECKED_TYPES and self.ids.id_for(rtype, rid) not in self.known:
            raise Quarantine(f"unresolved reference at {where}")
        return rtype, rid

    TARGETS_SIZE = 50_000

    def target(self, ref: Any, where: str) -> tuple[str, str, int]:
        """(type, id, stable id) of a Reference (see resolve), remembered by its text."""
        r = ref.get("reference") if type(ref) is dict else None
        if type(r) is str:
            hit = self._targets.get(r)
            if hit is not None:
                return hit
        rtype, rid = self.resolve(ref, where)
        hit = (rtype, rid, self.ids.id_for(rtype, rid))
        if type(r) is str:
            if len(self._targets) >= self.TARGETS_SIZE:
                self._targets = {}
            self._targets[r] = hit
        return hit

    def person(self, res: dict[str, Any], field: str = "subject") -> int:
        ref = res.get(field)
        if ref is None:
            raise Quarantine(f"missing {field}")
        rtype, _, pid = self.target(ref, field)
        if rtype != "Patient":
            raise Quarantine(f"{field} is not a Patient")
        if pid not in self.known:
            raise Quarantine(f"unresolved reference at {field}")
        self.persons_touched.add(pid)
        return pid

    def optional(self, ref: Any, where: str, rtype: str) -> int | None:
        """Stable id of an optional reference of the given type (None when absent or of
        another type); Quarantine when it names something that does not exist."""
        if ref is None:
            return None
        t, _, sid = self.target(ref, where)
        return sid if t == rtype else None

    def code_of(self, ref: Any, where: str, rtype: str) -> Any:
        """The code of a referenced (or contained) Medication / Device."""
        t, rid = self.resolve(ref, where)
        if t == "#":
            target = self.contained.get(rid)
            if target is None:
                raise Quarantine(f"unresolved contained reference at {where}")
            return target.get("code") if rtype == "Medication" else target.get("type")
        code = self.codes.get((t, rid))
        if code is None:
            raise Quarantine(f"unresolved reference at {where}")
        return code

    # -- values ----------------------------------------------------------------------------
    def concept(self, table: str, cc: Any) -> Mapped:
        m = self.vocab.concept(cc)
        self.coverage.add(table, m)
        return m

    @staticmethod
    def when(value: Any, where: str) -> tuple[date, datetime | None]:
        try:
            return fhirtime.parse(value)
        except fhirtime.BadDate:
            raise Quarantine(f"unparseable date at {where}") from None
