"""Source codes (FHIR system URI + code) → OMOP concepts, through the store's vocabulary.

The look-ups are read once per run into dicts: (vocabulary_id, concept_code) → source concept,
and source concept → its standard concept through CONCEPT_RELATIONSHIP 'Maps to' (a standard
concept maps to itself). Without a loaded vocabulary every code is unmapped (concept_id 0).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

# FHIR system URIs (FHIR R4 terminology pages, ANS SMT for the French CIM-10) → OMOP vocabulary.
SYSTEM_VOCABULARY: dict[str, str] = {
    "http://snomed.info/sct": "SNOMED",
    "urn:oid:2.16.840.1.113883.6.96": "SNOMED",
    "http://loinc.org": "LOINC",
    "urn:oid:2.16.840.1.113883.6.1": "LOINC",
    "http://www.nlm.nih.gov/research/umls/rxnorm": "RxNorm",
    "urn:oid:2.16.840.1.113883.6.88": "RxNorm",
    "http://hl7.org/fhir/sid/icd-10": "ICD10",
    "urn:oid:2.16.840.1.113883.6.3": "ICD10",
    "http://hl7.org/fhir/sid/icd-10-cm": "ICD10CM",
    "urn:oid:2.16.840.1.113883.6.90": "ICD10CM",
    "https://smt.esante.gouv.fr/terminologie-cim-10": "CIM10",
    "http://data.esante.gouv.fr/atih/cim10": "CIM10",
    "http://hl7.org/fhir/sid/cvx": "CVX",
    "urn:oid:2.16.840.1.113883.12.292": "CVX",
    "http://www.whocc.no/atc": "ATC",
    "urn:oid:2.16.840.1.113883.6.73": "ATC",
    "http://unitsofmeasure.org": "UCUM",
    "urn:oid:2.16.840.1.113883.6.8": "UCUM",
    "http://hl7.org/fhir/sid/ndc": "NDC",
    "urn:oid:2.16.840.1.113883.6.69": "NDC",
}
VOCABULARIES = tuple(sorted(set(SYSTEM_VOCABULARY.values())))


@dataclass(frozen=True)
class Mapped:
    concept_id: int  # standard concept, 0 when unmapped
    source_concept_id: int  # the source code's own concept, 0 when the vocabulary lacks it
    domain: str | None  # domain of the standard concept
    source_value: str  # the code as written (what *_source_value keeps)
    vocabulary: str  # OMOP vocabulary id, or the system URI when unknown


UNMAPPED_NOTHING = Mapped(0, 0, None, "", "")


@dataclass
class Coverage:
    """Records and distinct codes, mapped or not, per (CDM table, source vocabulary).

    `add` only counts each look-up result (a Mapped, mostly the same few objects from the
    vocabulary's cache) per table; the counts are folded into the totals when they are read
    or pickled."""

    records: Counter = field(default_factory=Counter)
    mapped_records: Counter = field(default_factory=Counter)
    codes: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    mapped_codes: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    # table -> id(Mapped) -> [Mapped, records]; the Mapped is held, so its id stays unique
    pending: dict[str, dict[int, list[Any]]] = field(default_factory=dict, repr=False)

    PENDING_SIZE = 10_000

    def add(self, table: str, m: Mapped) -> None:
        counts = self.pending.get(table)
        if counts is None:
            counts = self.pending[table] = {}
        hit = counts.get(id(m))
        if hit is not None:
            hit[1] += 1
            return
        if len(counts) >= self.PENDING_SIZE:  # results not from the cache: fold now and then
            self.fold()
            counts = self.pending[table] = {}
        counts[id(m)] = [m, 1]

    def fold(self) -> None:
        """Move the pending counts into records / codes."""
        for table, counts in self.pending.items():
            for m, n in counts.values():
                key = (table, m.vocabulary or "none")
                self.records[key] += n
                self.codes.setdefault(key, set()).add(m.source_value)
                if m.concept_id:
                    self.mapped_records[key] += n
                    self.mapped_codes.setdefault(key, set()).add(m.source_value)
        self.pending = {}

    def __getstate__(self) -> dict[str, Any]:
        self.fold()
        return self.__dict__.copy()

    def to_list(self) -> list[dict[str, Any]]:
        self.fold()
        out = []
        for key in sorted(self.records):
            table, vocab = key
            n, nm = self.records[key], self.mapped_records[key]
            c, cm = len(self.codes.get(key, ())), len(self.mapped_codes.get(key, ()))
            out.append(
                {
                    "table": table,
                    "vocabulary": vocab,
                    "records": n,
                    "records_mapped": nm,
                    "codes": c,
                    "codes_mapped": cm,
                    "record_share": round(nm / n, 4) if n else None,
                    "code_share": round(cm / c, 4) if c else None,
                }
            )
        return out

    @property
    def unmapped_records(self) -> int:
        self.fold()
        return sum(self.records.values()) - sum(self.mapped_records.values())


class Vocabulary:
    """In-memory look-ups of one store's CONCEPT and 'Maps to' relationships."""

    def __init__(self) -> None:
        # (vocabulary_id, concept_code) -> (source concept_id, standard concept_id, domain)
        self._codes: dict[tuple[str, str], tuple[int, int, str | None]] = {}
        # (system, code) -> its Mapped (immutable), for codes that recur; filled by lookup()
        self._seen: dict[tuple[str | None, str], Mapped] = {}
        self.loaded = False

    @classmethod
    def from_store(cls, store: Any) -> Vocabulary:
        vocab = cls()
        have = store.existing_tables()
        if "concept" not in have:
            return vocab
        concept = store.qualified("concept")
        marks = ", ".join(f"'{v}'" for v in VOCABULARIES)  # constants, not user text
        rows = store.query(
            f"SELECT concept_id, vocabulary_id, concept_code, standard_concept, domain_id "
            f"FROM {concept} WHERE vocabulary_id IN ({marks})"
        ).rows
        if not rows:
            return vocab
        maps: dict[int, tuple[int, str | None]] = {}
        if "concept_relationship" in have:
            rel = store.qualified("concept_relationship")
            for src, dst, domain in store.query(
                f"SELECT r.concept_id_1, r.concept_id_2, c.domain_id FROM {rel} r "
                f"JOIN {concept} c ON c.concept_id = r.concept_id_2 "
                f"WHERE r.relationship_id = 'Maps to' AND r.invalid_reason IS NULL "
                f"AND c.standard_concept = 'S' ORDER BY r.concept_id_1, r.concept_id_2"
            ).rows:
                maps.setdefault(int(src), (int(dst), domain))
        codes = vocab._codes
        for cid, vid, code, standard, domain in rows:
            cid = int(cid)
            target = (cid, domain) if standard == "S" else maps.get(cid, (0, None))
            key = (vid, code)
            prev = codes.get(key)
            # A code can exist twice (e.g. a deprecated duplicate): keep the mapped one.
            if prev is None or (prev[1] == 0 and target[0]):
                codes[key] = (cid, target[0], target[1])
        vocab.loaded = True
        return vocab

    SEEN_SIZE = 50_000

    def lookup(self, system: str | None, code: str | None) -> Mapped:
        if type(code) is str and (system is None or type(system) is str):
            key = (system, code)
            hit = self._seen.get(key)
            if hit is None:
                hit = self._lookup(system, code)
                if len(self._seen) >= self.SEEN_SIZE:
                    self._seen.clear()
                self._seen[key] = hit
            return hit
        return self._lookup(system, code)

    def _lookup(self, system: str | None, code: str | None) -> Mapped:
        code = code or ""
        vid = SYSTEM_VOCABULARY.get(system or "")
        if vid is None:
            return Mapped(0, 0, None, code, system or "")
        hit = self._codes.get((vid, code))
        if hit is None:
            return Mapped(0, 0, None, code, vid)
        return Mapped(hit[1], hit[0], hit[2], code, vid)

    def lookup_vocabulary(self, vocabulary_id: str, code: str) -> tuple[int, int]:
        """(source concept_id, standard concept_id) of a code in an OMOP vocabulary."""
        hit = self._codes.get((vocabulary_id, code))
        return (hit[0], hit[1]) if hit else (0, 0)

    def concept(self, cc: Any) -> Mapped:
        """Best coding of a CodeableConcept: the first that maps to a standard concept,
        else the first coding (kept as source value)."""
        if not isinstance(cc, dict):
            return UNMAPPED_NOTHING
        codings = cc.get("coding") or ()
        first = None
        seen = self._seen
        for coding in codings:
            if not isinstance(coding, dict):
                continue
            system = coding.get("system")
            code = coding.get("code")
            # lookup(), with its cache hit inline
            m = (
                seen.get((system, code))
                if type(code) is str and (system is None or type(system) is str)
                else None
            )
            if m is None:
                m = self.lookup(system, code)
            if m.concept_id:
                return m
            if first is None:
                first = m
        if first is None:
            text = cc.get("text")
            return Mapped(0, 0, None, text if isinstance(text, str) else "", "")
        return first

    def unit(self, code: str | None) -> int:
        if not code:
            return 0
        hit = self._codes.get(("UCUM", code))
        return hit[1] if hit else 0
