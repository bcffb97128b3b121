"""Finding and describing OMOP CSV exports: Athena (tab, YYYYMMDD) or Eunomia (comma, ISO).

A `CsvFile` says everything a bulk loader needs: which table, the delimiter, quoting, the date
format, and for every column of the target table where its value comes from (a source column, a
constant, a row number, or NULL). The plan is built from the header alone plus a small sample,
so it costs nothing on a large file.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from passerelle.cdm import v53
from passerelle.cdm.model import Table
from passerelle.cdm.schema import TABLES_BY_NAME
from passerelle.errors import LoadRefused

SUFFIXES = (".csv", ".csv.gz", ".tsv", ".tsv.gz")
_YYYYMMDD = re.compile(r"^\d{8}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}")
# Date formats a file may use for its DATE columns. DATETIME_AS_DATE: the export wrote dates as
# timestamps ("2005-05-07 00:00:00", as ETL-Synthea does); they are parsed as timestamps and
# truncated to the date.
ISO_DATE = "%Y-%m-%d"
COMPACT_DATE = "%Y%m%d"
DATETIME_AS_DATE = "%Y-%m-%d %H:%M:%S"
SAMPLE_LINES = 200


@dataclass(frozen=True)
class ColumnSource:
    """Where one target column's values come from."""

    target: str
    source: str | None = None  # a header name of the file, as written there
    constant: int | None = None
    row_number: bool = False


@dataclass(frozen=True)
class CsvFile:
    path: Path
    table: Table
    delimiter: str
    quote: str  # '' when the format has no quoting (Athena's tab-separated files)
    header: tuple[str, ...]  # as written in the file
    date_format: str  # strftime format of DATE columns ('%Y-%m-%d' or '%Y%m%d')
    columns: tuple[ColumnSource, ...]
    ignored: tuple[str, ...]  # source columns with no v5.4 home, named in the report
    cdm_version: str  # "5.3" when v5.3 renames or fills were needed, else "5.4"

    @property
    def compressed(self) -> bool:
        return self.path.name.endswith(".gz")

    def source_type(self, header_name: str) -> str:
        """The logical type a source column is parsed as (its target's, or VARCHAR)."""
        for c in self.columns:
            if c.source == header_name:
                logical = self.table.column(c.target).type
                if logical == "DATE" and self.date_format == DATETIME_AS_DATE:
                    return "TIMESTAMP"
                return logical
        return "VARCHAR"

    def target_type(self, header_name: str) -> str:
        """The logical type of the column a source column fills (VARCHAR if none)."""
        for c in self.columns:
            if c.source == header_name:
                return self.table.column(c.target).type
        return "VARCHAR"


@dataclass(frozen=True)
class UnknownFile:
    path: Path
    reason: str


def table_name_of(path: Path) -> str:
    name = path.name.lower()
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _open_text(path: Path):
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return path.open("r", encoding="utf-8", newline="")


def _split(line: str, delimiter: str) -> list[str]:
    return [f.strip().strip('"').strip() for f in line.rstrip("\r\n").split(delimiter)]


def discover(folder: Path) -> tuple[list[Path], list[UnknownFile]]:
    """CSV files in `folder` that name a CDM table, and the files that do not."""
    if not folder.is_dir():
        raise LoadRefused(f"{folder}: not a folder")
    loadable: list[Path] = []
    unknown: list[UnknownFile] = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        if not path.name.lower().endswith(SUFFIXES):
            unknown.append(UnknownFile(path, "not a .csv, .csv.gz, .tsv or .tsv.gz file"))
            continue
        name = table_name_of(path)
        if name in TABLES_BY_NAME:
            loadable.append(path)
        elif name in v53.DROPPED_TABLES:
            unknown.append(UnknownFile(path, f"table {name} exists in CDM v5.3 only"))
        else:
            unknown.append(UnknownFile(path, f"no CDM v5.4 table is named {name}"))
    return loadable, unknown


def _sample(path: Path) -> Iterator[str]:
    with _open_text(path) as fh:
        for i, line in enumerate(fh):
            if i > SAMPLE_LINES:
                break
            yield line


def describe(path: Path) -> CsvFile:
    """Read the header and a sample of `path` and plan its load into its CDM table."""
    table = TABLES_BY_NAME[table_name_of(path)]
    try:
        lines = list(_sample(path))
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise LoadRefused(f"{path}: cannot be read ({type(exc).__name__})") from None
    if not lines or not lines[0].strip():
        raise LoadRefused(f"{path}: empty file, no header line")
    first = lines[0]
    delimiter = "\t" if "\t" in first else ","
    quote = "" if delimiter == "\t" else '"'
    header = tuple(_split(first, delimiter))
    renames = v53.RENAMES.get(table.name, {})
    targets = set(table.column_names)
    by_target: dict[str, str] = {}
    ignored: list[str] = []
    version = "5.4"
    for raw in header:
        name = raw.lower()
        if name in renames:
            name = renames[name]
            version = "5.3"
        if name in targets and name not in by_target:
            by_target[name] = raw
        else:
            ignored.append(raw)
    fills = v53.FILLED.get(table.name, {})
    sources: list[ColumnSource] = []
    missing_required: list[str] = []
    for col in table.columns:
        if col.name in by_target:
            sources.append(ColumnSource(col.name, source=by_target[col.name]))
        elif col.name in fills:
            rule = fills[col.name]
            version = "5.3"
            if rule == "row_number":
                sources.append(ColumnSource(col.name, row_number=True))
            else:
                sources.append(ColumnSource(col.name, constant=int(rule)))
        else:
            if col.required:
                missing_required.append(col.name)
            sources.append(ColumnSource(col.name))
    if missing_required:
        raise LoadRefused(
            f"{path}: required column(s) {', '.join(missing_required)} of {table.name} "
            "are missing from the header"
        )
    date_format = _detect_date_format(lines[1:], header, delimiter, table, by_target)
    return CsvFile(
        path=path,
        table=table,
        delimiter=delimiter,
        quote=quote,
        header=header,
        date_format=date_format,
        columns=tuple(sources),
        ignored=tuple(ignored),
        cdm_version=version,
    )


def _detect_date_format(
    rows: list[str],
    header: tuple[str, ...],
    delimiter: str,
    table: Table,
    by_target: dict[str, str],
) -> str:
    date_positions = [
        header.index(src) for tgt, src in by_target.items() if table.column(tgt).type == "DATE"
    ]
    for line in rows:
        fields = _split(line, delimiter)
        for pos in date_positions:
            if pos < len(fields) and fields[pos]:
                if _YYYYMMDD.match(fields[pos]):
                    return COMPACT_DATE
                if _DATETIME.match(fields[pos]):
                    return DATETIME_AS_DATE
                return ISO_DATE
    return ISO_DATE
