"""``landmarks fetch CSV --out DIR [...]``: the local engine (``local.fetch_catalog``) from the command line."""

from __future__ import annotations

import argparse
import sys

from .. import images


def _number(kind: type, low: float, strict: bool):
    """An argparse type: ``kind`` values >= ``low`` (> ``low`` when ``strict``)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value < low or (strict and value == low):
            raise argparse.ArgumentTypeError(f"must be {'>' if strict else '>='} {low}, not {text}")
        return value

    return parse


_positive_int, _count, _seconds = _number(int, 1, False), _number(int, 0, False), _number(float, 0, True)


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
    parser.add_argument("--size", type=_positive_int, default=250, help="side of the square JPEGs (default 250)")
    parser.add_argument(
        "--resize", choices=images.RESIZE_MODES, default="stretch", help="default stretch (the study's)"
    )
    parser.add_argument("--limit", type=_count, default=None, help="only the first N rows")
    parser.add_argument("--workers", type=_positive_int, default=32, help="downloads in flight (default 32)")
    parser.add_argument("--timeout", type=_seconds, default=20.0, help="seconds per attempt (default 20)")
    parser.add_argument("--retries", type=_count, default=2, help="further attempts on transient errors (default 2)")
    parser.add_argument(
        "--processes", type=_positive_int, default=None, help="worker processes (default: one per core)"
    )
    parser.add_argument(
        "--fail-fast-after",
        type=_count,
        default=3,
        metavar="N",
        help="consecutive connection failures after which a host's other rows fail at once (default 3; 0: never)",
    )
    parser.add_argument(
        "--strict", action="store_true", help="refuse a catalog with a bad row (default: the row fails alone)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    dask = parser.add_argument_group("on a Dask cluster (--engine dask; README: Past one machine)")
    dask.add_argument(
        "--engine",
        choices=("local", "dask"),
        default="local",
        help="local: this machine (default); dask: shards on a Dask cluster, same manifest",
    )
    dask.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="a running Dask scheduler (tcp://host:8786); default: a local cluster of processes",
    )
    dask.add_argument(
        "--dask-workers",
        type=_positive_int,
        default=None,
        metavar="N",
        help="worker processes of the local cluster (default: one per core)",
    )
    dask.add_argument(
        "--shard-rows",
        type=_positive_int,
        default=10_000,
        metavar="N",
        help="catalog rows per shard, one task each (default 10000)",
    )
    dask.add_argument(
        "--max-per-host",
        type=_count,
        default=0,
        metavar="N",
        help="requests in flight per host over the whole cluster (default 0: no limit)",
    )
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
    common = dict(
        size=args.size,
        resize=args.resize,
        limit=args.limit,
        workers=args.workers,
        timeout=args.timeout,
        retries=args.retries,
        progress=not args.quiet,
        strict=args.strict,
        fail_fast_after=args.fail_fast_after,
    )
    try:
        if args.engine == "dask":
            from .dask_engine import fetch_catalog_dask

            summary = fetch_catalog_dask(
                args.csv,
                args.out,
                scheduler=args.scheduler,
                n_workers=args.dask_workers,
                shard_rows=args.shard_rows,
                max_per_host=args.max_per_host,
                **common,
            )
        else:
            summary = fetch_catalog(args.csv, args.out, processes=args.processes, **common)
    except (SchedulerUnreachable, OutputNotShared, ShardError) as exc:
        print(f"landmarks fetch: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # CatalogError, or a manifest.csv in OUT that is not a fetch manifest
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
