from pathlib import Path

import pytest

from passerelle.config import Settings, load_settings, settings_markdown
from passerelle.errors import ConfigError

DOC = Path(__file__).resolve().parent.parent / "docs" / "settings.md"


def test_every_setting_has_a_description():
    undocumented = [
        n for n, f in Settings.model_fields.items() if not (f.description or "").strip()
    ]
    assert undocumented == []


def test_settings_page_is_generated_from_the_code():
    assert DOC.read_text() == settings_markdown(), (
        "docs/settings.md is stale: run `python -m passerelle.config > docs/settings.md`"
    )


def test_config_file_and_environment(tmp_path, monkeypatch):
    cfg = tmp_path / "p.toml"
    cfg.write_text('[passerelle]\nstore = "duckdb:///x.duckdb"\nlog_level = "INFO"\n')
    monkeypatch.setenv("PASSERELLE_LOG_LEVEL", "DEBUG")
    s = load_settings(str(cfg))
    assert s.store == "duckdb:///x.duckdb"
    assert s.log_level == "DEBUG"  # the environment wins over the file


def test_unknown_setting_in_file_is_named(tmp_path):
    cfg = tmp_path / "p.toml"
    cfg.write_text('stroe = "x"\n')
    with pytest.raises(ConfigError, match="stroe"):
        load_settings(str(cfg))
