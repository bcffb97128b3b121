"""`python -m passerelle.demo.webserver --port N`: the single window alone (REST API, HTML pages,
observatory) for the demo, configured by PASSERELLE_* environment variables (app database,
vocabulary store, hub URL). The demo runs it next to the hub, since `passerelle serve --role
hub` serves the federation hub only."""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="passerelle.demo.webserver")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    from passerelle.config import get_settings
    from passerelle.federation.server import serve
    from passerelle.web.app import create_app

    settings = get_settings()
    serve(create_app(settings), host=args.host, port=args.port, log_level=settings.log_level)


if __name__ == "__main__":
    main()
