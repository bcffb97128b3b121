"""`passerelle ingest csv DIR --mapping NAME|FILE.yaml`: CSV exports → CDM rows through a
declarative mapping file (format in docs/fhir-to-omop.md, "Mapped CSV"). The built-in
`synthea` mapping (mappings/synthea.yaml) is one such file.

Ids are stable (site + type + key columns, with an occurrence number for repeated keys),
person_source_value is the keyed pseudonym, rows are committed in atomic batches, and rows
whose person is unknown or whose values do not parse are counted as rejected (never logged).
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from passerelle.cdm.schema import TABLES_BY_NAME
from passerelle.cdm.stores import open_store
from passerelle.config import Settings, get_settings
from passerelle.errors import UserError
from passerelle.ingest import fhirtime, obsperiod
from passerelle.ingest.ids import IdMaker, Pseudonymiser, check_site, load_or_create_key
from passerelle.ingest.rows import ROW_KEYS, Batch, to_arrow
from passerelle.ingest.vocab import Vocabulary

KINDS = (
    "column",
    "constant",
    "date",
    "datetime",
    "year",
    "month",
    "day",
    "number",
    "id",
    "pseudonym",
    "concept",
    "source_concept",
    "values",
    "coalesce",
)


class Reject(Exception):
    pass


@dataclass(frozen=True)
class Entry:
    file: str
    table: str
    key_type: str
    key_columns: tuple[str, ...]
    person: str | None
    where: tuple[dict[str, tuple[str, ...]], ...]
    where_not: tuple[dict[str, tuple[str, ...]], ...]
    columns: dict[str, Any]


def _conditions(raw: Any, where: str) -> tuple[dict[str, tuple[str, ...]], ...]:
    if raw is None:
        return ()
    items = raw if isinstance(raw, list) else [raw]
    out = []
    for item in items:
        if not isinstance(item, dict):
            raise UserError(f"mapping: {where} must be a mapping or a list of mappings")
        out.append(
            {
                k: tuple(str(v) for v in (vs if isinstance(vs, list) else [vs]))
                for k, vs in item.items()
            }
        )
    return tuple(out)


def load_mapping(name_or_path: str) -> tuple[dict[str, Any], list[Entry]]:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.exists():
        text = path.read_text()
    else:
        res = resources.files("passerelle.ingest") / "mappings" / f"{name_or_path}.yaml"
        if not res.is_file():
            raise UserError(
                f"no mapping named {name_or_path} (give a built-in name or a .yaml file)"
            )
        text = res.read_text()
    doc = yaml.safe_load(text)
    entries = []
    for i, e in enumerate(doc.get("tables") or ()):
        where = f"tables[{i}]"
        table = e.get("table")
        if table not in TABLES_BY_NAME or TABLES_BY_NAME[table].vocabulary:
            raise UserError(f"mapping: {where}.table is not a clinical CDM table")
        cols = e.get("columns") or {}
        for col, spec in cols.items():
            if col not in TABLES_BY_NAME[table].column_names:
                raise UserError(f"mapping: {where}.columns.{col} is not a column of {table}")
            _check_spec(spec, f"{where}.columns.{col}")
        key = e.get("key") or {}
        if not key.get("type") or not key.get("columns"):
            raise UserError(f"mapping: {where}.key needs a type and columns")
        entries.append(
            Entry(
                file=e["file"],
                table=table,
                key_type=key["type"],
                key_columns=tuple(key["columns"]),
                person=e.get("person"),
                where=_conditions(e.get("where"), f"{where}.where"),
                where_not=_conditions(e.get("where_not"), f"{where}.where_not"),
                columns=cols,
            )
        )
    return doc, entries


def _check_spec(spec: Any, where: str) -> None:
    if not isinstance(spec, dict) or not any(k in spec for k in KINDS):
        raise UserError(f"mapping: {where} needs one of {', '.join(KINDS)}")


def _match(row: dict[str, str], conds: tuple[dict[str, tuple[str, ...]], ...]) -> bool:
    """True when any condition holds (each: all its columns have one of the values)."""
    return any(all(row.get(c, "") in vs for c, vs in cond.items()) for cond in conds)


class CsvIngest:
    def __init__(self, store, doc, site: str, pseudo: Pseudonymiser, batch_size: int = 20_000):
        self.store = store
        self.doc = doc
        self.ids = IdMaker(site)
        self.pseudo = pseudo
        self.batch = Batch()
        self.batch_size = batch_size
        self.vocabularies = doc.get("vocabularies") or {}
        store.init()
        self.vocab = Vocabulary.from_store(store)
        self.persons: set[int] = {
            int(r[0])
            for r in store.query(f"SELECT person_id FROM {store.qualified('person')}").rows
        }
        self.touched: set[int] = set()
        self.rows: Counter = Counter()
        self.read: Counter = Counter()
        self.rejected: Counter = Counter()
        self.unmapped = 0

    def value(self, spec: dict[str, Any], row: dict[str, str], col_type: str) -> Any:
        if "constant" in spec:
            return spec["constant"]
        if "coalesce" in spec:
            for sub in spec["coalesce"]:
                v = self.value(sub, row, col_type)
                if v not in (None, ""):
                    return v
            return None
        if "values" in spec:
            raw = row.get(spec["column"], "")
            return spec["values"].get(raw, spec.get("default"))
        for kind in ("date", "datetime", "year", "month", "day"):
            if kind in spec:
                raw = row.get(spec[kind], "")
                if not raw:
                    return None
                try:
                    d, t = fhirtime.parse(raw)
                except fhirtime.BadDate:
                    raise Reject(f"unparseable date in {spec[kind]}") from None
                return {"date": d, "datetime": t, "year": d.year, "month": d.month, "day": d.day}[
                    kind
                ]
        if "number" in spec:
            try:
                return float(row.get(spec["number"], ""))
            except ValueError:
                return None
        if "id" in spec:
            raw = row.get(spec["column"], "")
            return self.ids.id_for(spec["id"], raw) if raw else None
        if "pseudonym" in spec:
            raw = row.get(spec["pseudonym"], "")
            return self.pseudo(raw) if raw else None
        if "concept" in spec or "source_concept" in spec:
            column = spec.get("concept") or spec.get("source_concept")
            code = row.get(column, "") if column is not None else ""
            vocab = spec.get("vocabulary") or self.vocabularies.get(
                row.get(spec.get("vocabulary_column", ""), ""), ""
            )
            m = self.vocab.lookup_vocabulary(vocab, code)
            if "concept" in spec:
                if not m[1]:
                    self.unmapped += 1
                return m[1]
            return m[0]
        raw = row.get(spec["column"], "")
        if raw == "":
            return None
        if col_type in ("INTEGER", "BIGINT"):
            try:
                return int(float(raw))
            except ValueError:
                raise Reject(f"not a number in {spec['column']}") from None
        if col_type == "DOUBLE":
            try:
                return float(raw)
            except ValueError:
                raise Reject(f"not a number in {spec['column']}") from None
        return raw

    def run(self, folder: Path, entries: list[Entry]) -> dict[str, Any]:
        # persons first, so events can check their person exists
        ordered = sorted(entries, key=lambda e: e.table != "person")
        for e in ordered:
            path = folder / e.file
            if not path.exists():
                self.rejected[f"{e.file}: file absent"] += 0
                continue
            self._entry(path, e)
        self._flush()
        if self.touched:
            periods = obsperiod.derive(self.store, self.ids, self.touched)
            if periods:
                self.store.write_batches(
                    {"observation_period": to_arrow("observation_period", periods)}, ROW_KEYS
                )
                self.rows["observation_period"] += len(periods)
        return {
            "rows_per_table": dict(sorted(self.rows.items())),
            "read": dict(self.read),
            "rejected_by_reason": dict(self.rejected),
            "vocabulary_loaded": self.vocab.loaded,
            "unmapped_records": self.unmapped,
        }

    def _entry(self, path: Path, e: Entry) -> None:
        spec = TABLES_BY_NAME[e.table]
        types = {c.name: c.type for c in spec.columns}
        key_col = ROW_KEYS[e.table]
        seen: Counter = Counter()
        with path.open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                self.read[e.file] += 1
                if e.where and not _match(row, e.where):
                    continue
                if e.where_not and _match(row, e.where_not):
                    continue
                key = "|".join(row.get(c, "") for c in e.key_columns)
                seen[key] += 1
                part = seen[key] - 1
                try:
                    out = {key_col: self.ids.id_for(e.key_type, key, part or "")}
                    if e.person:
                        pid = self.ids.id_for("Patient", row.get(e.person, ""))
                        if pid not in self.persons:
                            raise Reject(f"{e.file}: person not in {e.person}")
                        out["person_id"] = pid
                        self.touched.add(pid)
                    for col, cspec in e.columns.items():
                        out[col] = self.value(cspec, row, types[col])
                    for c in spec.columns:
                        if c.required and out.get(c.name) is None:
                            raise Reject(f"{e.table}.{c.name} is empty")
                except Reject as exc:
                    self.rejected[str(exc)] += 1
                    continue
                if e.table == "person":
                    self.persons.add(out["person_id"])
                    self.touched.add(out["person_id"])
                self.batch.add(e.table, out)
                self.batch.resources += 1
                if self.batch.resources >= self.batch_size:
                    self._flush()

    def _flush(self) -> None:
        if len(self.batch):
            self.store.write_batches(self.batch.to_arrow(), ROW_KEYS)
            self.rows.update(self.batch.counts())
        self.batch.tables.clear()
        self.batch.resources = 0


def ingest_csv(
    folder: Path,
    mapping: str,
    store_url: str,
    site: str = "default",
    settings: Settings | None = None,
) -> dict[str, Any]:
    settings = settings or get_settings()
    check_site(site)
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder")
    doc, entries = load_mapping(mapping)
    pseudo = Pseudonymiser(load_or_create_key(settings.data_dir, site))
    with open_store(store_url, settings) as store:
        return CsvIngest(store, doc, site, pseudo).run(folder, entries)
