"""``landmarks fetch CSV --out DIR [...]``: the fetch engines (``local.fetch_catalog``, ``dask_engine.fetch_catalog_dask``)
from the command line. Each option but ``--out`` and ``--quiet`` is made from the ``config.FetchConfig`` field it sets
(``OPTIONS``): its type, choices, range, default and help come from there."""

from __future__ import annotations

import argparse
import sys
import typing

from .. import config, files
from ..config import FetchConfig

OPTIONS = {
    "--size": ("image_size", "PIXELS"),
    "--resize": ("resize", None),
    "--limit": ("n_images", "N"),
    "--workers": ("workers", None),
    "--timeout": ("timeout", None),
    "--retries": ("retries", None),
    "--processes": ("processes", None),
    "--fail-fast-after": ("fail_fast_after", "N"),
    "--images": ("images", "SOURCE"),
    "--strict": ("strict", None),
}
"""Option -> the ``FetchConfig`` field it sets and its metavar (None: argparse's)."""
DASK_OPTIONS = {
    "--engine": ("engine", None),
    "--scheduler": ("scheduler", "ADDRESS"),
    "--dask-workers": ("dask_workers", "N"),
    "--shard-rows": ("shard_rows", "N"),
    "--max-per-host": ("max_per_host", "N"),
}
"""The same, in the help's Dask group."""
DEFAULTS = {"n_images": None}
"""Where the command's default is not ``FetchConfig``'s: without ``--limit``, every row."""


def _add_option(parser, option: str, name: str, metavar: str | None) -> None:
    """``parser.add_argument(option)`` for ``FetchConfig``'s field ``name``."""
    f = FetchConfig.__dataclass_fields__[name]
    hint = typing.get_type_hints(FetchConfig)[name]
    default = DEFAULTS.get(name, f.default)
    help_text = f.metadata["doc"] + ("" if default is None or default is False else f" (default: {default})")
    if hint is bool:
        parser.add_argument(option, dest=name, action="store_true", help=help_text)
        return
    kind = next((k for k in (int, float) if k in (hint, *typing.get_args(hint))), None)

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        try:
            return config.check_value(option, value, hint, f.metadata["bounds"])
        except config.ConfigError as err:
            raise argparse.ArgumentTypeError(str(err).removeprefix(f"{option}: ")) from None

    choices = typing.get_args(hint) if typing.get_origin(hint) is typing.Literal else None
    parser.add_argument(
        option,
        dest=name,
        type=parse if kind else None,
        choices=choices,
        default=default,
        metavar=metavar,
        help=help_text,
    )


def add_cli(subparsers) -> None:
    """Register ``landmarks fetch CSV --out DIR [...]``."""
    parser = subparsers.add_parser(
        "fetch",
        help="download, convert and resize a catalog's images",
        description="Fetch every row of a catalog CSV (id,url[,landmark_id]) into OUT/<landmark_id>/<id>.jpg "
        "(OUT/<id>.jpg without labels) with OUT/manifest.csv; a bad row fails alone; a rerun resumes.",
    )
    parser.add_argument("csv", help="catalog CSV; relative paths in url are relative to its folder")
    parser.add_argument("--out", required=True, help="output folder")
    for option, (name, metavar) in OPTIONS.items():
        _add_option(parser, option, name, metavar)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    dask = parser.add_argument_group("on a Dask cluster (--engine dask; README: Past one machine)")
    for option, (name, metavar) in DASK_OPTIONS.items():
        _add_option(dask, option, name, metavar)
    parser.set_defaults(func=_run_cli)


def _run_cli(args: argparse.Namespace) -> int:
    from ..cluster import SchedulerUnreachable
    from .dask_engine import OutputNotShared, ShardError
    from .local import WorkerError, fetch_catalog

    if args.engine == "local" and (args.scheduler or args.dask_workers or args.max_per_host):
        print("landmarks fetch: --scheduler, --dask-workers and --max-per-host need --engine dask", file=sys.stderr)
        return 2
    if args.engine == "dask" and args.processes:
        print("landmarks fetch: --processes is for --engine local (see --dask-workers)", file=sys.stderr)
        return 2
    # every option but --out and --quiet sets the FetchConfig field of its name; no --limit: every row
    settings = FetchConfig(**{k: v for k, v in vars(args).items() if k in FetchConfig.__dataclass_fields__})
    try:
        if settings.engine == "dask":
            from .dask_engine import fetch_catalog_dask

            summary = fetch_catalog_dask(args.csv, args.out, settings, progress=not args.quiet)
        else:
            summary = fetch_catalog(args.csv, args.out, settings, progress=not args.quiet)
    except (SchedulerUnreachable, OutputNotShared, ShardError, files.FolderBusy) as exc:
        print(f"landmarks fetch: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # CatalogError, SourceError, or a manifest.csv in OUT that is not a fetch manifest
        print(f"landmarks fetch: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the output folder cannot be created or written
        print(f"landmarks fetch: {exc.filename or args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except WorkerError as exc:
        print(f"landmarks fetch: {exc}", file=sys.stderr)
        return 1
    print(summary.report())
    return 0
