"""``landmarks fetch CSV --out DIR [...]``: the fetch engines (``local.fetch_catalog``, ``dask_engine.fetch_catalog_dask``)
from the command line; each option sets the ``config.FetchConfig`` field of its name (``--size``: ``image_size``,
``--limit``: ``n_images``)."""

from __future__ import annotations

import argparse
import sys

from .. import files, images
from ..config import FetchConfig


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


_DEFAULTS = FetchConfig()  # the defaults live in config.FetchConfig; the help shows them from there


def add_cli(subparsers) -> None:
    """Register ``landmarks fetch CSV --out DIR [...]``."""
    d = _DEFAULTS
    parser = subparsers.add_parser(
        "fetch",
        help="download, convert and resize a catalog's images",
        description="Fetch every row of a catalog CSV (id,url[,landmark_id]) into OUT/<landmark_id>/<id>.jpg "
        "(OUT/<id>.jpg without labels) with OUT/manifest.csv; a bad row fails alone; a rerun resumes.",
    )
    parser.add_argument("csv", help="catalog CSV; relative paths in url are relative to its folder")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--size",
        dest="image_size",
        type=_positive_int,
        metavar="PIXELS",
        default=d.image_size,
        help=f"side of the square JPEGs (default {d.image_size}; the study's: 250)",
    )
    parser.add_argument(
        "--resize", choices=images.RESIZE_MODES, default=d.resize, help=f"default {d.resize} (the study's)"
    )
    parser.add_argument(
        "--limit",
        dest="n_images",
        type=_positive_int,
        default=None,
        metavar="N",
        help="only the first N rows (default: all)",
    )
    parser.add_argument(
        "--workers", type=_positive_int, default=d.workers, help=f"downloads in flight (default {d.workers})"
    )
    parser.add_argument(
        "--timeout", type=_seconds, default=d.timeout, help=f"seconds per attempt (default {d.timeout:g})"
    )
    parser.add_argument(
        "--retries", type=_count, default=d.retries, help=f"further attempts on transient errors (default {d.retries})"
    )
    parser.add_argument(
        "--processes", type=_positive_int, default=d.processes, help="worker processes (default: one per core)"
    )
    parser.add_argument(
        "--fail-fast-after",
        type=_count,
        default=d.fail_fast_after,
        metavar="N",
        help="consecutive connection failures after which a host's other rows fail at once "
        f"(default {d.fail_fast_after}; 0: never)",
    )
    parser.add_argument(
        "--images",
        default=d.images,
        metavar="SOURCE",
        help="read the images from SOURCE instead of the urls: a folder of TAR shards (GLDv2 images_NNN.tar, "
        "with md5.images_NNN.txt checked when present) or of image files (a/b/c/<id>.jpg or <id>.jpg); the "
        "catalog may then be id,landmark_id, id,url,landmark_id, landmark_id,images (train_clean.csv) or id",
    )
    parser.add_argument(
        "--strict", action="store_true", help="refuse a catalog with a bad row (default: the row fails alone)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    dask = parser.add_argument_group("on a Dask cluster (--engine dask; README: Past one machine)")
    dask.add_argument(
        "--engine",
        choices=("local", "dask"),
        default=d.engine,
        help="local: this machine (default); dask: shards on a Dask cluster, same manifest",
    )
    dask.add_argument(
        "--scheduler",
        default=d.scheduler,
        metavar="ADDRESS",
        help="a running Dask scheduler (tcp://host:8786); default: a local cluster of processes",
    )
    dask.add_argument(
        "--dask-workers",
        type=_positive_int,
        default=d.dask_workers,
        metavar="N",
        help="worker processes of the local cluster (default: one per core)",
    )
    dask.add_argument(
        "--shard-rows",
        type=_positive_int,
        default=d.shard_rows,
        metavar="N",
        help=f"catalog rows per shard, one task each (default {d.shard_rows})",
    )
    dask.add_argument(
        "--max-per-host",
        type=_count,
        default=d.max_per_host,
        metavar="N",
        help=f"requests in flight per host over the whole cluster (default {d.max_per_host}: no limit)",
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
