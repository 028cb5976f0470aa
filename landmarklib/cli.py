"""The ``landmarks`` command: ``sample``, ``fetch``, ``predict``, ``score``, ``report``.

Each subcommand lives in the module that does the work, which provides
``add_cli(subparsers)``; this file only wires them together.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> module providing add_cli(subparsers)
_COMMANDS = {
    "sample": "landmarklib.sample",
    "fetch": "landmarklib.fetch",
    "predict": "landmarklib.predict",
    "score": "landmarklib.scoring",
    "report": "landmarklib.report",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``command`` given, only that subcommand's module is imported (faster start)."""
    parser = argparse.ArgumentParser(
        prog="landmarks",
        description="Landmark image recognition pipeline (see README.md).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    names = [command] if command in _COMMANDS else list(_COMMANDS)
    for name in names:
        importlib.import_module(_COMMANDS[name]).add_cli(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv[0] if argv else None)
    args = parser.parse_args(argv)
    try:
        rc = args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
