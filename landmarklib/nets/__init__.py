"""The Keras layer: every module here imports Keras at its top, and the project's Keras objects live here.

    layers      GeM pooling and the cosine head (retrieval)
    losses      label-smoothed cross-entropy; ArcFace and CosFace
    metrics     the strict top-k accuracy
    res_incep   the study's Res-Incep network
    resnet50    its ResNet-50 benchmark
    models      the registry of architectures (one module each: ``build`` and ``FEATURES``); build, summarise, load
    pipeline    the Keras input pipeline: ``batches`` (a ``PyDataset``), the study's augmented copies
    recipes     the study's and the modern training recipe: optimizer, schedule, loss
    train       compile (XLA on JAX, always), fit, history, checkpoints, diverged/collapsed runs
    inference   traced inference, exact log-probabilities, test-time flips, prediction chunks, timing
    retrieval   GeM embeddings, their index and the kNN vote (``landmarks predict --method retrieval``)

The classes of ``layers``, ``losses`` and ``metrics`` are registered for saving at module level (as Keras'
own applications are) and ``models`` imports them: a saved model of any recipe loads. Outside this package
only ``recognition``, ``predict.local`` and ``visualize.network`` import it at their top; the command line
imports it inside the function that runs a model (tests/unit/test_layering.py).
"""
