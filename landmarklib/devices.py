"""Where a run computes: the Keras backend, its devices, the precision policy, data parallelism.

    setup(device, allow_cpu, precision, data_parallel)
                       what notebooks 03/04 call first, before building a model: the three below
    require_device()   stop at once, with one line, when a GPU is asked for and none is found
    set_precision()    ``keras.mixed_precision`` global policy: float32 | mixed_bfloat16 | mixed_float16
    distribute()       ``keras.distribution.DataParallel`` over every visible device (JAX backend)
    describe()         backend, devices (kind, count, name, memory where the backend tells),
                       precision policy and replicas, as the metrics files record them
    summary()          that description in one line ("jax, 1 x NVIDIA H200 (140 GiB), mixed_bfloat16")
    record()           ``{"runtime": describe(), "ran_on": summary()}``, for a notebook's metrics
    replicas()         how many devices a global batch is split across (1 without a distribution)

Precision: the models' softmax layers are built with ``dtype="float32"``, so probabilities and the
loss stay in float32 whatever the policy. With ``mixed_float16`` Keras 3's ``Model.compile`` wraps the
optimizer in a ``LossScaleOptimizer`` by itself (``compile(auto_scale_loss=True)``, the default,
checks ``model.dtype_policy.name == "mixed_float16"``): no loss scaling code here. bfloat16 has
float32's exponent range and needs none; it is the one for JAX (and TPUs).

Data parallelism (JAX backend only): the global batch is split across the devices, the variables are
replicated, and the gradients averaged by XLA. A batch must then divide evenly by the device count:
``nets.pipeline.batches(..., replicas=n)`` trims the last training batch to a multiple of ``n`` (at most
``n - 1`` images an epoch, other ones each epoch) and pads the last evaluation or prediction batch
with zero-weight copies (``predict`` output is trimmed by its callers; see ``fit_callbacks`` for the
validation loss). One device means no distribution at all, so one GPU trains exactly as before.

    python -m landmarklib.devices                 # prints the description (JSON)
    python -m landmarklib.devices --require gpu   # exits 2 with one line when no GPU is visible
"""

from __future__ import annotations

import argparse
import json
import os
import sys

DEVICES = ("auto", "gpu", "cpu")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


# "cpu" once require_device("cpu") moved the computation to the CPU (a GPU may still be visible)
_kind: str | None = None


class DeviceError(RuntimeError):
    """The run asked for a device that is not there (the message is one line)."""


def backend() -> str:
    """The Keras backend's name, without importing Keras when ``KERAS_BACKEND`` says it."""
    import keras  # Keras when asked: `landmarks report` imports this module to check the device first

    return keras.backend.backend()


def _jax_devices(kind: str | None = None) -> list:
    import jax  # the backend in use only

    if kind is None:
        return jax.devices()
    try:
        return jax.devices(kind)
    except RuntimeError:  # no such platform (e.g. "gpu" with CPU-only jaxlib)
        return []


def _physical_devices() -> list[dict]:
    """The backend's devices of its default kind: ``[{"kind", "name", "memory_bytes"}]``.

    ``memory_bytes`` is the device memory the backend can use when it says (JAX: ``bytes_limit`` of
    ``memory_stats()``; PyTorch: ``total_memory``; TensorFlow does not tell: ``None``).
    """
    name = backend()
    if name == "jax":
        out = []
        for d in _jax_devices(_kind):
            stats = d.memory_stats() if hasattr(d, "memory_stats") else None
            out.append(
                {
                    "kind": d.platform,
                    "name": getattr(d, "device_kind", d.platform),
                    "memory_bytes": (stats or {}).get("bytes_limit"),
                }
            )
        return out
    if name == "tensorflow":
        import tensorflow as tf  # the backend in use only

        gpus = tf.config.get_visible_devices("GPU")
        if gpus:
            out = []
            for g in gpus:
                details = tf.config.experimental.get_device_details(g)
                out.append({"kind": "gpu", "name": details.get("device_name", g.name), "memory_bytes": None})
            return out
        return [{"kind": "cpu", "name": "cpu", "memory_bytes": None} for _ in tf.config.list_physical_devices("CPU")]
    if name == "torch":
        import torch  # the backend in use only

        if torch.cuda.is_available():
            return [
                {
                    "kind": "gpu",
                    "name": torch.cuda.get_device_name(i),
                    "memory_bytes": torch.cuda.get_device_properties(i).total_memory,
                }
                for i in range(torch.cuda.device_count())
            ]
    return [{"kind": "cpu", "name": "cpu", "memory_bytes": None}]


def replicas() -> int:
    """Devices the global batch is split across: the data-parallel mesh's size, 1 without one."""
    if backend() != "jax":
        return 1
    import keras  # Keras when asked: `landmarks report` imports this module to check the device first

    distribution = keras.distribution.distribution()
    return int(distribution.device_mesh.devices.size) if distribution is not None else 1


def describe(asked: str | None = None) -> dict:
    """The run's compute, as the metrics files record it.

    Args:
        asked: the ``device`` parameter (recorded as ``device_asked``).

    Returns:
        ``{"backend", "device", "device_count", "device_name", "device_memory_gib", "precision",
        "replicas", "device_asked", "devices"}``: ``device`` is the kind of the backend's devices
        (``gpu``, ``cpu``, ``tpu``), ``device_memory_gib`` that of the first one when the backend
        tells (else ``None``), ``devices`` one entry per device.
    """
    import keras  # Keras when asked: `landmarks report` imports this module to check the device first

    devices = _physical_devices()
    first = devices[0] if devices else {"kind": "cpu", "name": "cpu", "memory_bytes": None}
    memory = first["memory_bytes"]
    return {
        "backend": backend(),
        "device": first["kind"],
        "device_count": len(devices),
        "device_name": first["name"],
        "device_memory_gib": round(memory / 2**30, 1) if memory else None,
        "precision": keras.mixed_precision.global_policy().name,
        "replicas": replicas(),
        "device_asked": asked,
        "devices": devices,
    }


def summary(description: dict | None) -> str:
    """One line: ``"jax, 2 x NVIDIA H200 (140 GiB), mixed_bfloat16, batch split across 2 devices"``."""
    if not description:
        return "not recorded"
    d = description
    memory = f" ({d['device_memory_gib']:g} GiB)" if d.get("device_memory_gib") else ""
    name = d.get("device_name") or d.get("device")
    kind = d.get("device", "?")
    count = d.get("device_count", "?")
    what = f"{count} x {name}{memory}" if name != kind else (kind if count == 1 else f"{count} x {kind}")
    text = f"{d.get('backend', '?')}, {what}, {d.get('precision', '?')}"
    if (d.get("replicas") or 1) > 1:
        text += f", batch split across {d['replicas']} devices"
    return text


def record(description: dict | None = None) -> dict:
    """What a notebook adds to its metrics: ``{"runtime": describe(), "ran_on": summary(...)}``."""
    description = describe() if description is None else description
    return {"runtime": description, "ran_on": summary(description)}


def require_device(device: str = "auto", allow_cpu: bool = False) -> dict:
    """Check that the backend sees the device the run asks for; returns ``describe()``.

    Args:
        device: ``"gpu"`` (a GPU or TPU must be visible), ``"cpu"`` (run on the CPU even when
            a GPU is there: JAX's default device becomes the CPU, TensorFlow's GPUs are
            hidden; call before any computation), or ``"auto"`` (whatever the backend has).
        allow_cpu: with ``device="gpu"`` and no GPU, carry on on the CPU (with a one-line
            warning) instead of stopping.

    Raises:
        DeviceError: ``device="gpu"``, no GPU and not ``allow_cpu``; its message is one line.
        ValueError: ``device`` is not one of ``DEVICES``.
    """
    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)} (got {device!r})")
    if device == "cpu":
        _use_cpu()
    description = describe(device)
    if device == "gpu" and description["device"] == "cpu":
        line = (
            f"device: gpu was asked for, but the {description['backend']} backend sees no GPU "
            f"(only {description['device_count']} CPU device(s)); install the GPU stack "
            '(`make install GPU=1`, see the README\'s "On a GPU box") or set allow_cpu: true to run on the CPU'
        )
        if not allow_cpu:
            raise DeviceError(line)
        print(f"warning: {line.split(';')[0]}; allow_cpu: true, so running on the CPU", file=sys.stderr, flush=True)
    return description


def _use_cpu() -> None:
    """Compute on the CPU even when the backend sees a GPU."""
    global _kind
    _kind = "cpu"
    name = backend()
    if name == "jax":
        import jax  # the backend in use only

        jax.config.update("jax_default_device", _jax_devices("cpu")[0])
    elif name == "tensorflow":
        import tensorflow as tf  # the backend in use only

        if tf.config.list_physical_devices("GPU"):
            tf.config.set_visible_devices([], "GPU")  # RuntimeError once TensorFlow has run anything


def set_precision(precision: str = "float32") -> str:
    """Set Keras' global dtype policy; models built afterwards compute in it.

    Args:
        precision: ``float32``, ``mixed_bfloat16`` (the one for JAX) or ``mixed_float16``
            (TensorFlow on GPU; ``compile`` adds loss scaling by itself).

    Returns:
        The policy's name.
    """
    import keras  # Keras when asked: `landmarks report` imports this module to check the device first

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)} (got {precision!r})")
    keras.mixed_precision.set_global_policy(precision)
    return keras.mixed_precision.global_policy().name


def distribute(enable: bool = True) -> int:
    """Split each global batch across every visible device of the default kind (JAX backend).

    With one device (or another backend, or ``enable=False``) no distribution is set (any
    earlier one is removed), so the run is exactly the undistributed one. Call before
    building the model: variables are laid out when created.

    Returns:
        The number of replicas (``replicas()``).
    """
    import keras  # Keras when asked: `landmarks report` imports this module to check the device first

    if backend() != "jax":
        return 1
    devices = keras.distribution.list_devices(_kind)
    if enable and len(devices) > 1:
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    else:
        keras.distribution.set_distribution(None)
    return replicas()


def setup(
    device: str = "auto", allow_cpu: bool = False, precision: str = "float32", data_parallel: bool = True
) -> dict:
    """Check the device, set the precision policy and data parallelism; returns ``describe()``.

    Call once at the start of a training notebook, before any model is built.

    Args:
        device, allow_cpu: see ``require_device``.
        precision: see ``set_precision``.
        data_parallel: split batches across every visible device (JAX, more than one device).
    """
    require_device(device, allow_cpu)
    set_precision(precision)
    distribute(data_parallel)
    return describe(device)


def fit_callbacks(val_data) -> list:
    """Callbacks that ``fit`` needs for ``val_data`` (a ``nets.pipeline.batches`` dataset), first in the list.

    A padded validation set (more than one replica, rows not a multiple of it) makes Keras
    average the validation loss over the padded count (its loss tracker weighs each batch by
    its size, zero-weight rows included); this puts ``val_loss`` back on the real rows.
    Accuracy metrics use the sample weights and need nothing.
    """
    padding = getattr(val_data, "padding", 0)
    if not padding:
        return []
    import keras  # Keras when asked: `landmarks report` imports this module to check the device first

    n = len(val_data.paths)

    class ValLossOnRealRows(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if logs is not None and "val_loss" in logs:
                logs["val_loss"] = float(logs["val_loss"]) * (n + padding) / n

    return [ValLossOnRealRows()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Describe the Keras backend's devices; check one is there.")
    parser.add_argument("--require", choices=DEVICES, default="auto", help="stop (exit 2) when it is not there")
    parser.add_argument("--allow-cpu", action="store_true", help="with --require gpu: carry on on the CPU")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        description = require_device(args.require, args.allow_cpu)
    except DeviceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(description, indent=1))
    print(summary(description), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
