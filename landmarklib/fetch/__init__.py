"""Fetch a catalog's images: URL -> square RGB JPEG, with retries, a manifest and resume.

``landmarks fetch CSV --out DIR`` (or ``fetch_catalog``) reads a Kaggle-layout catalog and,
for each row, reads the image (``http(s)://``, ``file://`` or a path relative to the CSV's
folder), decodes it by content, converts it to RGB, resizes it to ``size`` x ``size`` and writes

    DIR/<landmark_id>/<id>.jpg     (DIR/<id>.jpg for a catalog without landmark_id)
    DIR/manifest.csv               one row per catalog row (``landmarklib.manifest``)

A bad row (no url, a landmark_id that is not an integer, an unsafe or repeated id, an HTTP
error, not an image, ...) fails alone with its reason; a host that cannot be reached fails
fast; a killed run resumes. The package:

    core.py     the per-row core: ``fetch_chunk(rows, out_dir, options, hosts=None)`` -> manifest rows
                (urllib3 with retries, redirects, proxies, size cap; per-host fail-fast)
    local.py    the local engine: ``fetch_catalog`` (a process pool of download threads, the
                journal, resume) and ``FetchSummary``
    dask_engine.py  the Dask engine: ``fetch_catalog_dask`` (shards as tasks on a cluster, the same manifest)
    cli.py      ``landmarks fetch``
"""

from ..manifest import COLUMNS as MANIFEST_COLUMNS
from ..manifest import JOURNAL_NAME, reason_of
from ..manifest import NAME as MANIFEST_NAME
from .cli import add_cli
from .core import (
    MAX_BYTES,
    FetchError,
    FetchOptions,
    HostHealth,
    HttpClient,
    fetch_chunk,
    fetch_row,
    fetch_rows,
    is_valid_output,
    locate,
    output_path,
    read_file,
    read_source,
)
from .local import FetchSummary, WorkerError, fetch_catalog, remove_empty_folders

__all__ = [
    "JOURNAL_NAME",
    "MANIFEST_COLUMNS",
    "MANIFEST_NAME",
    "MAX_BYTES",
    "FetchError",
    "FetchOptions",
    "FetchSummary",
    "HostHealth",
    "HttpClient",
    "WorkerError",
    "add_cli",
    "fetch_catalog",
    "fetch_chunk",
    "fetch_row",
    "fetch_rows",
    "is_valid_output",
    "locate",
    "output_path",
    "read_file",
    "read_source",
    "reason_of",
    "remove_empty_folders",
]
