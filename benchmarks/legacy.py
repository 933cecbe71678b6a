"""The training augmentation the project used before ``data.augment``, kept as a baseline.

Keras preprocessing layers: mirror, rotate up to +-18 degrees, zoom +-10 %, contrast +-10 %.
``RandomRotation`` and ``RandomZoom`` set ``supports_jit = False`` (Keras 3.13.2 to 3.16),
so Keras trains a model that holds them without XLA on a GPU. It stays here, beside the
package, only to measure against: the augmentation part of ``python -m benchmarks``, the
pipeline that augmented in ``tf.data`` (``benchmarks.data``), and ``tests/test_xla.py``,
which shows Keras turning XLA off for it.
"""

import keras
from keras import layers


class KerasLayersAugmentation(layers.Layer):
    """The former ``augmentation(seed)``, called as ``AugmentedModel`` calls the new one.

    Four Keras random layers, each with its own seed; ``step`` is ignored (each layer keeps
    its own random state instead).
    """

    def __init__(self, seed=0, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.random_layers = keras.Sequential(
            [
                layers.RandomFlip("horizontal", seed=seed, dtype="float32"),
                layers.RandomRotation(0.05, fill_mode="reflect", seed=seed + 1, dtype="float32"),
                layers.RandomZoom(0.1, fill_mode="reflect", seed=seed + 2, dtype="float32"),
                layers.RandomContrast(0.1, seed=seed + 3, dtype="float32"),
            ],
            name="keras_layers",
        )

    def build(self, input_shape):
        self.random_layers.build(input_shape)

    def call(self, images, step=0):
        return self.random_layers(keras.ops.cast(images, "float32"), training=True)

    def compute_output_shape(self, input_shape):
        return input_shape
