"""The project's Keras layers (retrieval's GeM pooling and cosine head, Res-Incep's stochastic depth), registered
for saving under ``landmarks``.

Only ``keras.ops``: they run under TensorFlow and JAX, and ``keras.saving.load_model`` reads a model
holding them once this module is imported (``models.load`` and ``retrieval.load_model`` import it).
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="landmarks")
class GeM(keras.layers.Layer):
    """Generalized-mean pooling over height and width with a learnable exponent ``p``.

    ``GeM(x) = (mean over positions of max(x, eps) ** p) ** (1 / p)`` per channel: ``p = 1``
    is average pooling, large ``p`` approaches max pooling (Radenovic et al., 2018).

    Args:
        p: initial exponent (3 is the usual start).
        eps: floor of the activations (the power needs positive values).
        trainable_p: learn ``p`` with the rest of the network.
    """

    def __init__(self, p: float = 3.0, eps: float = 1e-6, trainable_p: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.p_init = float(p)
        self.eps = float(eps)
        self.trainable_p = bool(trainable_p)

    def build(self, input_shape):
        self.p = self.add_weight(
            name="p", shape=(), initializer=keras.initializers.Constant(self.p_init), trainable=self.trainable_p
        )

    def call(self, x):
        p = ops.cast(self.p, x.dtype)
        x = ops.power(ops.maximum(x, self.eps), p)
        return ops.power(ops.mean(x, axis=(1, 2)), 1.0 / p)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "p": self.p_init, "eps": self.eps, "trainable_p": self.trainable_p}


@keras.saving.register_keras_serializable(package="landmarks")
class CosineHead(keras.layers.Layer):
    """Cosine similarity of each (normalised) input with one learned, normalised centre per class.

    Args:
        num_classes: number of classes (landmarks).
    """

    def __init__(self, num_classes: int, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)

    def build(self, input_shape):
        self.centres = self.add_weight(
            name="centres", shape=(int(input_shape[-1]), self.num_classes), initializer="glorot_uniform"
        )

    def call(self, x):
        x = x / ops.sqrt(ops.maximum(ops.sum(ops.square(x), axis=-1, keepdims=True), 1e-12))
        w = ops.cast(self.centres, x.dtype)
        w = w / ops.sqrt(ops.maximum(ops.sum(ops.square(w), axis=0, keepdims=True), 1e-12))
        return ops.matmul(x, w)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_classes)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


@keras.saving.register_keras_serializable(package="landmarks")
class StochasticDepth(keras.layers.Layer):
    """Stochastic depth (Huang et al. 2016; "drop path"): a residual branch dropped per sample while training.

    While training, each sample's whole input (the residual branch's output, before it is added to the
    shortcut) is zeroed with probability ``rate`` and scaled by ``1 / (1 - rate)`` when kept, so its expectation
    is unchanged; at inference (``training`` false or absent) the layer is the identity. The draws come from
    the layer's ``keras.random.SeedGenerator``: seeded by ``seed``, or, with ``seed=None``, by Keras' global seed
    when the layer is made (``keras.utils.set_random_seed``, which ``train.set_seed`` calls before a model is
    built), so training is reproducible; its state is a non-trainable variable that ``train`` keeps for a resume.

    Args:
        rate: the probability that a sample's branch is dropped, in [0, 1).
        seed: the seed generator's seed (None: from Keras' global seed).
    """

    def __init__(self, rate: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= rate < 1:
            raise ValueError(f"stochastic depth rate must be in [0, 1), not {rate}")
        self.rate = float(rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True

    def call(self, x, training=None):
        if not training or self.rate == 0:
            return x
        # one draw per sample, broadcast over the rest: Keras' dropout with a (N, 1, ..., 1) noise shape
        noise_shape = (ops.shape(x)[0],) + (1,) * (len(x.shape) - 1)
        return keras.random.dropout(x, self.rate, noise_shape=noise_shape, seed=self.seed_generator)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}
