"""One store-URL syntax for the CLI, the config file and the API.

duckdb:///path/cdm.duckdb                         the embedded default
postgresql://user@host:5432/db?schema=cdm         a PostgreSQL schema
spark:///path/to/warehouse[?master=local[2]]      Parquet tables in a folder, Spark local mode
spark:///warehouse?master=sc://host:15002         the same through Spark Connect
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

from passerelle.errors import InvalidStoreURL

SCHEMES = ("duckdb", "postgresql", "spark")
_ALIASES = {"postgres": "postgresql", "postgresql+psycopg": "postgresql"}


@dataclass(frozen=True)
class StoreURL:
    scheme: str
    path: str = ""
    host: str = ""
    port: int | None = None
    user: str = ""
    password: str = field(default="", repr=False)
    database: str = ""
    params: tuple[tuple[str, str], ...] = ()

    def param(self, name: str, default: str = "") -> str:
        return dict(self.params).get(name, default)

    @property
    def schema(self) -> str:
        return self.param("schema", "cdm" if self.scheme == "postgresql" else "main")

    def redacted(self) -> str:
        """The URL as it may appear in logs and messages: never the password."""
        if self.scheme == "postgresql":
            auth = f"{self.user}@" if self.user else ""
            port = f":{self.port}" if self.port else ""
            query = f"?{urlencode(self.params)}" if self.params else ""
            return f"postgresql://{auth}{self.host}{port}/{self.database}{query}"
        query = f"?{urlencode(self.params)}" if self.params else ""
        return f"{self.scheme}://{self.path}{query}"

    def postgres_conninfo(self) -> str:
        parts = {
            "host": self.host or "127.0.0.1",
            "port": str(self.port or 5432),
            "dbname": self.database or "postgres",
        }
        if self.user:
            parts["user"] = self.user
        if self.password:
            parts["password"] = self.password
        parts["connect_timeout"] = self.param("connect_timeout", "5")
        return " ".join(f"{k}='{v}'" for k, v in parts.items())

    def __str__(self) -> str:
        return self.redacted()


def parse_store_url(url: str) -> StoreURL:
    if "://" not in url:
        raise InvalidStoreURL(
            f"store URL {url!r} has no scheme; expected one of "
            + ", ".join(f"{s}://" for s in SCHEMES)
        )
    parts = urlsplit(url)
    scheme = _ALIASES.get(parts.scheme.lower(), parts.scheme.lower())
    if scheme not in SCHEMES:
        raise InvalidStoreURL(
            f"unknown store scheme {parts.scheme!r} in {url.split('@')[-1]!r}; "
            f"expected one of {', '.join(SCHEMES)}"
        )
    params = tuple(parse_qsl(parts.query, keep_blank_values=True))
    if scheme == "postgresql":
        database = parts.path.lstrip("/")
        if not database:
            raise InvalidStoreURL("a postgresql store URL needs a database: postgresql://host/db")
        try:
            port = parts.port
        except ValueError as exc:
            raise InvalidStoreURL(f"bad port in store URL: {exc}") from None
        schema = dict(params).get("schema", "cdm")
        if not schema.isidentifier():
            raise InvalidStoreURL(f"schema {schema!r} is not a plain SQL identifier")
        return StoreURL(
            scheme,
            host=parts.hostname or "127.0.0.1",
            port=port,
            user=parts.username or "",
            password=parts.password or "",
            database=database,
            params=params,
        )
    path = (parts.netloc + parts.path) if parts.netloc else parts.path
    if not path:
        raise InvalidStoreURL(f"a {scheme} store URL needs a path: {scheme}:///path")
    if scheme in ("duckdb", "spark") and path.startswith("//"):
        path = "/" + path.lstrip("/")  # duckdb:////abs/path (a root path after ///) is /abs/path
    if scheme == "duckdb" and path != ":memory:":
        path = str(Path(path))
    return StoreURL(scheme, path=path, params=params)
