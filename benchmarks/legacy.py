"""The training augmentation the project used before ``data.augment``, kept as a baseline.

Keras preprocessing layers: mirror, rotate up to +-18 degrees, zoom +-10 %, contrast +-10 %.
``RandomRotation`` and ``RandomZoom`` set ``supports_jit = False`` (Keras 3.13.2 to 3.16),
so Keras trains a model that holds them without XLA on a GPU. It stays here, beside the
package, only to measure against: the augmentation part of ``python -m benchmarks``, the
pipeline that augmented in ``tf.data`` (``benchmarks.data``), ``tests/test_xla.py``, which
shows Keras turning XLA off for it, and ``python -m benchmarks.legacy``, which times the two
augmentations alone.
"""

import statistics
import time

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


def time_augmentations(image_size=224, batch_size=32, repeats=10):
    """CPU and wall milliseconds per batch of each augmentation alone, interleaved, medians.

    Each runs as a traced ``tf.function`` (no XLA) on the same random batch, a new step each call.
    """
    import numpy as np
    import tensorflow as tf

    from densenet_tutorial.data import augmentation

    shape = (batch_size, image_size, image_size, 3)
    images = tf.constant(np.random.default_rng(0).uniform(0, 255, shape).astype("float32"))
    augmentations = {
        "augmentation()": augmentation(0),
        "Keras layers (before)": KerasLayersAugmentation(0),
    }
    steps = {
        name: tf.function(lambda step, layer=layer: layer(images, step=step))
        for name, layer in augmentations.items()
    }
    times = {name: {"cpu_ms": [], "wall_ms": []} for name in steps}
    for repeat in range(repeats + 1):  # the first call of each traces it: not timed
        for name, step in steps.items():
            wall, cpu = time.perf_counter(), time.process_time()
            step(tf.constant(repeat, tf.int64)).numpy()
            if repeat:
                times[name]["cpu_ms"].append(1000 * (time.process_time() - cpu))
                times[name]["wall_ms"].append(1000 * (time.perf_counter() - wall))
    return {name: {k: statistics.median(v) for k, v in t.items()} for name, t in times.items()}


if __name__ == "__main__":
    result = time_augmentations()
    for name, figures in result.items():
        print(f"{name}: {figures['cpu_ms']:.1f} ms CPU, {figures['wall_ms']:.1f} ms wall per batch")
    ours, before = result["augmentation()"], result["Keras layers (before)"]
    print(f"CPU time, augmentation() / before: {ours['cpu_ms'] / before['cpu_ms']:.2f}x")
