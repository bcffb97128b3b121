"""node.toml's [sync] table and hub.toml's web flag."""

from __future__ import annotations

import pytest

from passerelle.errors import ConfigError
from passerelle.federation.config import HubConfig, SyncConfig
from passerelle.federation.keys import KeyPair


def test_sync_table_reads_the_key_file_and_never_shows_the_key(tmp_path):
    (tmp_path / "node.key").write_text("pk_secret\n")
    cfg = SyncConfig.parse(
        {"hub_api": "https://hub.example/", "organisation": "CHU A", "api_key_file": "node.key"},
        tmp_path,
        "node.toml [sync]",
    )
    assert (cfg.hub_api, cfg.api_key, cfg.interval_seconds) == (
        "https://hub.example",
        "pk_secret",
        300,
    )
    assert "pk_secret" not in repr(cfg)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"organisation": "CHU A", "api_key": "k"}, "hub_api is required"),
        ({"hub_api": "http://h", "api_key": "k"}, "organisation is required"),
        ({"hub_api": "http://h", "organisation": "CHU A"}, "api_key or api_key_file"),
        ({"hub_api": "http://h", "organisation": "A", "api_key_file": "missing"}, "cannot read"),
        ({"hub_api": "http://h", "organisation": "A", "api_key": "k", "push": 1}, "unknown keys"),
        (
            {"hub_api": "http://h", "organisation": "A", "api_key": "k", "interval_seconds": 0},
            "positive",
        ),
    ],
)
def test_sync_table_errors(tmp_path, section, message):
    with pytest.raises(ConfigError, match=message):
        SyncConfig.parse(section, tmp_path, "node.toml [sync]")


def test_hub_web_flag(tmp_path):
    KeyPair.generate("hub").write(tmp_path / "keys")
    path = tmp_path / "hub.toml"
    path.write_text('[hub]\nname = "hub"\nprivate_key = "keys/hub.key"\n')
    assert HubConfig.load(path).web is False
    path.write_text('[hub]\nname = "hub"\nprivate_key = "keys/hub.key"\nweb = true\n')
    assert HubConfig.load(path).web is True
