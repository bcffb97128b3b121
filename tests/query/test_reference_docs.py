"""docs/study-language.md is generated from the spec cases and must be up to date."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_study_language_doc_is_up_to_date():
    spec = importlib.util.spec_from_file_location(
        "gen_study_docs", ROOT / "tools" / "gen_study_docs.py"
    )
    assert spec and spec.loader
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    current = (ROOT / "docs" / "study-language.md").read_text(encoding="utf-8")
    assert current == gen.render(), (
        "docs/study-language.md is stale: python tools/gen_study_docs.py > docs/study-language.md"
    )
