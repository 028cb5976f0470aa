"""landmarklib: the helper package behind the landmark-recognition notebooks.

Two layers. ``landmarklib.nets`` imports Keras at the top of every module and owns every Keras object
(layers, losses, metrics, architectures, the input pipeline, training, inference, retrieval). Outside it,
only recognition, predict.local and visualize.network (built on it) import it at their top; the command
line imports it inside the function that runs a model, and config ... augment, scoring, evaluate, openset,
predict.core and the report's content and HTML never reach it at all: `landmarks --help`, `fetch` and
`score` start without TensorFlow (tests/unit/test_layering.py, tests/unit/test_cli.py):

    config     every stage's settings and defaults: frozen dataclasses, checked on construction
    study      every number the 2018 study gives, with its section
    paths      project folders; resolve paths given relative to the project root
    files      atomic writes; paths as a reader sees them
    metrics    each notebook's key numbers as reports/metrics/<NN_name>.json, one schema per file
    sample     the embedded synthetic landmark data set (`landmarks sample`)
    catalog    read/validate Kaggle 2018 and GLDv2 CSVs; frequencies; filters; splits
    images     decode by content, convert to RGB, resize (shared by fetch and prediction)
    fetch      URL -> resized JPEG with retries, manifest and resume (`landmarks fetch`): the per-row
               core (fetch/core.py), the local engine (fetch/local.py), the Dask engine (fetch/dask_engine.py)
    manifest   the one reader/writer of manifest.csv (fetched folders); why a folder has no images
    cluster    a Dask client: a LocalCluster or a running scheduler; whether the workers see a file
    nodata     NoData: a notebook with no images to work on stops with one line
    data       fetched folder -> splits, label map, decoded images; closed and open splits
    augment    training augmentation (the study's, the photo one) on the CPU, in the input pipeline
    scoring    a Kaggle submission scored against a solution (`landmarks score`)
    evaluate   GAP, accuracy, strict top-k, confusion, thresholds, scores of a prediction table
    openset    closed and open-set scores with paired bootstrap intervals
    predict    `landmarks predict`: the test images, the predictions table and submission (predict/core.py),
               the local engine (predict/local.py), the Dask engine (predict/dask_engine.py)
    devices    the device check, precision policy, data parallelism; where a run ran
    nets       the Keras layer (its docstring lists its modules: models, train, retrieval, ...)
    recognition  notebook 07's methods side by side (study, modern, retrieval)
    visualize  figure functions, one submodule per family of figures
    report     run the notebooks with papermill, render HTML (`landmarks report`)
    cli        the `landmarks` command
    httpserver a real HTTP server on 127.0.0.1 with hostile routes, for the tests and benchmarks
"""

__version__ = "0.1.0"
