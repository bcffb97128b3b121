"""The `passerelle` command: one sub-command group per package.

Commands are thin adapters over service functions; a UserError prints one line on stderr
(no traceback) and exits with its code.
"""

from __future__ import annotations

import importlib
import logging
import sys

import typer
from rich.console import Console

from passerelle.errors import PasserelleError

app = typer.Typer(
    name="passerelle",
    help="Secure, harmonized access to hospital health data (OMOP CDM v5.4).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err_console = Console(stderr=True)


def _register() -> None:
    from passerelle.cdm.commands import app as cdm_app
    from passerelle.demo.commands import demo

    app.add_typer(cdm_app, name="cdm")
    app.command("demo")(demo)

    for module in COMMAND_GROUPS:
        importlib.import_module(module).register(app)


# Packages that add their own command groups by exposing `register(app)`.
COMMAND_GROUPS = (
    "passerelle.query.commands",
    "passerelle.ingest.commands",
    "passerelle.privacy.commands",
    "passerelle.access.commands",
    "passerelle.catalog.commands",
    "passerelle.federation.commands",
)


@app.callback()
def _root(
    config: str = typer.Option(None, "--config", help="TOML settings file (see docs/settings.md)."),
) -> None:
    import os

    from passerelle.config import get_settings

    if config:
        os.environ["PASSERELLE_CONFIG"] = config
        get_settings.cache_clear()
    logging.basicConfig(level=get_settings().log_level.upper())


def main(argv: list[str] | None = None) -> None:
    _register()
    try:
        code = app(args=argv, standalone_mode=False)
        # Without standalone mode click returns (not raises) the code of a typer.Exit.
        if isinstance(code, int) and code:
            sys.exit(code)
    except PasserelleError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
