"""landmarklib: the helper package behind the landmark-recognition notebooks.

Modules (one job each). The Keras-facing ones (models, train, data, visualize.network) import
Keras at the top; the command line's (cli, sample, fetch, evaluate, report) do not, so that
`landmarks --help` and `landmarks fetch` start without TensorFlow (tests/unit/test_cli.py):

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
    cluster    a Dask client: a LocalCluster or a running scheduler; per-worker model cache
    nodata     NoData: a notebook with no images to work on stops with one line
    data       fetched folder -> Keras input pipeline; label map; closed and open splits
    augment    training augmentation (the study's, the photo one) on the CPU, in the input pipeline
    devices    the device check, precision policy, data parallelism; where a run ran
    models     res_incep and its blocks; resnet50_benchmark
    recipes    the study's and the modern training recipe: optimizer, schedule, loss
    train      compile (XLA on JAX, always), fit, history, checkpoints, diverged/collapsed runs
    retrieval  GeM, ArcFace/CosFace, the embedding model, its index and the kNN vote
    openset    closed and open-set scores with paired bootstrap intervals
    recognition  notebook 07's methods side by side (study, modern, retrieval)
    evaluate   GAP, strict top-k, thresholds, prediction, timing (`landmarks predict`)
    visualize  figure functions, one submodule per family of figures
    report     run the notebooks with papermill, render HTML (`landmarks report`)
    cli        the `landmarks` command
    httpserver a real HTTP server on 127.0.0.1 with hostile routes, for the tests and benchmarks
"""

__version__ = "0.1.0"
