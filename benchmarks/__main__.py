"""`make bench`: run every benchmarks/bench_*.py and print one table.

Each module exposes `run() -> list[BenchRow]`. `python -m benchmarks cdm study` runs only
the modules whose name contains one of the words given.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from pathlib import Path

from rich.console import Console
from rich.table import Table

from benchmarks.common import BenchRow


def main(argv: list[str]) -> int:
    console = Console(width=200)
    modules = sorted(p.stem for p in Path(__file__).parent.glob("bench_*.py"))
    if argv:
        modules = [m for m in modules if any(w in m for w in argv)]
    rows: list[BenchRow] = []
    failed = []
    for name in modules:
        console.print(f"[dim]running {name} …[/]")
        try:
            mod = importlib.import_module(f"benchmarks.{name}")
            rows.extend(mod.run())
        except Exception:
            failed.append(name)
            console.print(f"[red]{name} failed[/]\n{traceback.format_exc()}")
    table = Table(title="Passerelle benchmarks (2 cores; ratios measured in the same run)")
    for col in ("area", "measure", "value", "compared with", "baseline", "ratio", "goal", "note"):
        table.add_column(col, justify="right" if col in ("value", "baseline", "ratio") else "left")
    for r in rows:
        table.add_row(
            r.area,
            r.name,
            f"{r.value:,.3f} {r.unit}",
            r.baseline_name,
            "" if r.baseline is None else f"{r.baseline:,.3f} {r.unit}",
            "" if r.ratio is None else f"{r.ratio:.2f}x",
            r.goal,
            r.note,
        )
    console.print(table)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
