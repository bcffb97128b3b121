"""Settings, declared once: name, default and description (env PASSERELLE_<NAME>).

A TOML file named by PASSERELLE_CONFIG (or `--config` on the CLI) may set the same names;
environment variables win over the file. `docs/settings.md` is generated from this class and a
test fails when a setting is undocumented.
"""

from __future__ import annotations

import os
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from passerelle.errors import ConfigError


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PASSERELLE_", extra="forbid")

    data_dir: Path = Field(
        Path("passerelle-data"),
        description="Folder for the embedded default: the DuckDB CDM store, the app database, keys.",
    )
    store: str = Field(
        "",
        description="Store URL of this node's CDM (duckdb://, postgresql://, spark://). "
        "Empty means duckdb:///<data_dir>/cdm.duckdb.",
    )
    spark_master: str = Field(
        "local[2]",
        description="Spark master when a spark:// store URL gives no ?master= (local mode by default).",
    )
    spark_driver_memory: str = Field(
        "2g", description="spark.driver.memory for Spark sessions started in local mode."
    )
    spark_shuffle_partitions: int = Field(
        4,
        description="spark.sql.shuffle.partitions; small for local mode, raise it on a cluster.",
    )
    duckdb_threads: int = Field(
        0, description="Threads DuckDB may use (0 = DuckDB's default: every core)."
    )
    duckdb_memory_limit: str = Field(
        "", description="DuckDB memory_limit, e.g. '4GB' (empty = DuckDB's default, 80 % of RAM)."
    )
    log_level: str = Field("WARNING", description="Python logging level of the CLI and services.")
    # -- single window: app database, accounts, deadlines, mail, catalogue (issue 6) ----------
    app_db_url: str = Field(
        "",
        description="SQLAlchemy URL of the app database (organisations, requests, audit chain). "
        "Empty means sqlite:///<data_dir>/passerelle.db; use postgresql+psycopg://... in production.",
    )
    token_ttl_minutes: int = Field(
        720, description="Lifetime of a bearer token issued at login, in minutes."
    )
    login_max_failures: int = Field(
        5,
        description="Failed logins allowed per account within login_window_minutes before lockout.",
    )
    login_window_minutes: int = Field(
        15, description="Window (and lockout length) of the login throttle, in minutes."
    )
    review_days: int = Field(
        60,
        description="Default review deadline of one producer, in days (a producer may override it).",
    )
    near_due_days: int = Field(
        10, description="A review is shown as near due when this many days or fewer remain."
    )
    approve_on_silence: bool = Field(
        False,
        description="When true, a review still pending at its deadline is approved on silence "
        "(off by default; only some bodies have this rule in French and EU law).",
    )
    smtp_host: str = Field("", description="SMTP server for reminders (empty = e-mail disabled).")
    smtp_port: int = Field(25, description="SMTP server port.")
    smtp_username: str = Field("", description="SMTP login (empty = no authentication).")
    smtp_password: str = Field("", description="SMTP password; never logged.")
    smtp_starttls: bool = Field(False, description="Use STARTTLS on the SMTP connection.")
    mail_from: str = Field(
        "passerelle@localhost", description="Sender address of reminder e-mails."
    )
    oidc_issuer: str = Field(
        "",
        description="OpenID Connect issuer URL (e.g. Pro Santé Connect or a Keycloak realm); "
        "empty disables OIDC login.",
    )
    oidc_client_id: str = Field("", description="OpenID Connect client id.")
    oidc_client_secret: str = Field("", description="OpenID Connect client secret; never logged.")
    oidc_redirect_url: str = Field(
        "",
        description="Callback URL registered at the issuer, ending in /api/v1/auth/oidc/callback.",
    )
    oidc_scopes: str = Field("openid email profile", description="Scopes asked of the issuer.")
    public_base_url: str = Field(
        "http://127.0.0.1:8000",
        description="Public URL of this hub; the base of catalogue URIs in HealthDCAT-AP exports.",
    )

    # -- web application and observatory (issue 8) -------------------------------------------
    hub_url: str = Field(
        "",
        description="URL of the federation hub the web pages send feasibility counts and studies "
        "to (empty = public_base_url, where `passerelle serve --role all` runs the hub).",
    )
    hub_token: str = Field(
        "", description="Bearer token the web pages send to the hub (its api_token); never logged."
    )
    hub_timeout_seconds: float = Field(
        120.0, description="How long a web page waits for the hub's answer, in seconds."
    )

    def default_hub_url(self) -> str:
        return (self.hub_url or self.public_base_url).rstrip("/")

    def default_app_db_url(self) -> str:
        if self.app_db_url:
            return self.app_db_url
        return f"sqlite:///{(self.data_dir / 'passerelle.db').resolve()}"

    def default_store_url(self) -> str:
        if self.store:
            return self.store
        return f"duckdb:///{(self.data_dir / 'cdm.duckdb').resolve()}"


def _file_values(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    p = Path(path)
    try:
        with p.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {p} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {p}: {exc}") from None
    section = data.get("passerelle", data)
    return {k: v for k, v in section.items() if not isinstance(v, dict)}


def load_settings(config_file: str | None = None) -> Settings:
    values = _file_values(config_file or os.environ.get("PASSERELLE_CONFIG"))
    env_names = {
        name for name in Settings.model_fields if f"PASSERELLE_{name.upper()}" in os.environ
    }
    file_values = {k: v for k, v in values.items() if k not in env_names}
    try:
        return Settings(**file_values)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"setting {where}: {first['msg']}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()


def settings_markdown() -> str:
    """docs/settings.md, generated from the declaration above."""
    lines = [
        "# Settings",
        "",
        "Generated from `passerelle/config.py` by `python -m passerelle.config > docs/settings.md`;",
        "a test fails when this page and the code disagree.",
        "",
        "Each setting is read from the environment variable `PASSERELLE_<NAME>` or from a TOML file",
        "(`--config FILE` or `PASSERELLE_CONFIG`, keys at top level or under `[passerelle]`);",
        "the environment wins.",
        "",
        "| setting | environment variable | default | description |",
        "|---|---|---|---|",
    ]
    for name, f in Settings.model_fields.items():
        default = f.default if f.default not in ("", None) else ""
        lines.append(
            f"| `{name}` | `PASSERELLE_{name.upper()}` | `{default}` | {f.description or ''} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(settings_markdown(), end="")
