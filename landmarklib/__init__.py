"""landmarklib: the helper package behind the landmark-recognition notebooks.

Modules (one job each). The Keras-facing ones (models, train, data, visualize.network) import
Keras at the top; the command line's (cli, sample, fetch, evaluate, report) do not, so that
`landmarks --help` and `landmarks fetch` start without TensorFlow (tests/test_cli.py):

    config     every stage's settings and defaults: frozen dataclasses, checked on construction
    study      every number the 2018 study gives, with its section
    paths      project folders; resolve paths given relative to the project root
    files      atomic writes; paths as a reader sees them
    metrics    each notebook's key numbers as reports/metrics/<NN_name>.json, one schema per file
    sample     the embedded synthetic landmark data set (`landmarks sample`)
    catalog    read/validate Kaggle 2018 and GLDv2 CSVs; frequencies; filters; splits
    images     decode by content, convert to RGB, resize (shared by fetch and prediction)
    fetch      URL -> resized JPEG with retries, manifest and resume (`landmarks fetch`): core + local engine
    manifest   the one reader/writer of manifest.csv (fetched folders)
    data       fetched folder -> Keras input pipeline; label map
    models     res_incep and its blocks; resnet50_benchmark
    train      compile, fit, history, checkpoints
    evaluate   GAP, accuracy, top-k, thresholds, prediction, timing (`landmarks predict`)
    visualize  figure functions, one submodule per family of figures
    report     run the notebooks with papermill, render HTML (`landmarks report`)
    cli        the `landmarks` command
"""

__version__ = "0.1.0"
