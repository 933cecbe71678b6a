"""The training augmentation: a random crop resized back, a mirror image, other colours.

The paper trains its ImageNet models with the augmentation of He et al. and fb.resnet.torch
(Sec. 4.1); fb.resnet.torch (datasets/transforms.lua) takes a random crop of 8-100 % of the
photo's area with an aspect ratio between 3/4 and 4/3, resizes it to 224 px, flips it
horizontally and jitters its colours. Here, for every image of every training step:

- **crop**: 25-100 % of the area (a Cats-vs-Dogs photo shows one animal, which a crop of
  8 % often misses), width / height between 3/4 and 4/3, anywhere in the photo, resized
  back to the input size (bilinear);
- **mirror**: left-right, one image in two;
- **colour**: brightness, contrast and saturation, each scaled by a factor in [0.8, 1.2].

It is written with plain TensorFlow operations, for two reasons:

1. **XLA.** On a GPU, Keras compiles the training step with XLA only if every layer of the
   model supports it (``Trainer._resolve_auto_jit_compile`` and ``model_supports_jit`` in
   keras/src/trainers/trainer.py). Keras's ``RandomRotation``, ``RandomZoom``,
   ``RandomTranslation`` and ``RandomCrop`` set ``supports_jit = False`` (Keras 3.13.2 to
   3.16), so one of them in front of the network turns XLA off for the whole step. The crop,
   resize and mirror here are two matrix products per image, which XLA compiles.
2. **Reproducible draws.** Each draw is a function of (``seed``, the training step, the
   replica) through TensorFlow's stateless random operations. A run resumed from a backup,
   which holds the optimizer's step count, draws exactly what the uninterrupted run would
   have drawn, with no random-generator state to save; two replicas never draw alike.
"""

import math
import random

import keras
import tensorflow as tf

SCALE = (0.25, 1.0)  # the crop's area, as a fraction of the photo's
RATIO = (3 / 4, 4 / 3)  # the crop's width / height, drawn uniformly on a log scale
COLOUR = 0.2  # brightness, contrast and saturation factors in [1 - COLOUR, 1 + COLOUR]
ALGORITHM = "philox"  # one algorithm everywhere ("auto_select" may pick another per device)


def random_key(seed, step, replica=0):
    """The key of one replica's draws at one training step: (seed, step), the replica folded in."""
    key = tf.stack([tf.cast(seed, tf.int64), tf.cast(step, tf.int64)])
    return tf.random.experimental.stateless_fold_in(key, tf.cast(replica, tf.int64), ALGORITHM)


def uniform(key, batch_size, low, high):
    """``batch_size`` numbers uniform in [low, high), from 24 random bits each.

    Built from random integers, which XLA and TensorFlow's own kernels draw alike from one
    key; their random floats differ (measured on a CPU, TensorFlow 2.21), and then a step
    compiled with XLA would not draw what the same step draws without it.
    """
    bits = tf.random.stateless_uniform(
        [batch_size], key, minval=None, maxval=None, dtype=tf.uint32, alg=ALGORITHM
    )
    fraction = tf.cast(tf.bitwise.right_shift(bits, 8), tf.float32) / 2**24
    return low + fraction * (high - low)


def draw(key, batch_size):
    """Each image's crop box (fractions of the sides), mirror and colour factors, from ``key``.

    Every quantity has its own key, split from ``key``, so no two are correlated. A crop
    whose aspect ratio does not fit at its area is clipped to the photo's side.
    """
    keys = iter(tf.unstack(tf.random.experimental.stateless_split(key, 8, ALGORITHM)))

    def next_uniform(low=0.0, high=1.0):
        return uniform(next(keys), batch_size, low, high)

    area = next_uniform(*SCALE)
    ratio = tf.exp(next_uniform(math.log(RATIO[0]), math.log(RATIO[1])))
    height = tf.minimum(tf.sqrt(area / ratio), 1.0)
    width = tf.minimum(tf.sqrt(area * ratio), 1.0)
    return {
        "top": next_uniform() * (1 - height),
        "left": next_uniform() * (1 - width),
        "height": height,
        "width": width,
        "mirror": next_uniform() < 0.5,
        "brightness": next_uniform(1 - COLOUR, 1 + COLOUR),
        "contrast": next_uniform(1 - COLOUR, 1 + COLOUR),
        "saturation": next_uniform(1 - COLOUR, 1 + COLOUR),
    }


def resampling(start, length, size, mirror=None):
    """Bilinear weights, ``(batch, size, size)``: ``size`` samples of [start, start + length].

    ``start`` and ``length`` are fractions of the side. Output pixel i reads the source at
    (start + (i + 0.5) / size * length) * size - 0.5 (pixel centres, as ``tf.image.resize``),
    kept inside the photo, from right to left where ``mirror``. Its weight on source pixel j
    is max(0, 1 - |position - j|): the bilinear "tent", two neighbours summing to 1.
    """
    centres = (tf.range(size, dtype=tf.float32) + 0.5) / size
    if mirror is not None:
        centres = tf.where(mirror[:, None], 1 - centres, centres)
    position = (start[:, None] + centres * length[:, None]) * size - 0.5
    position = tf.clip_by_value(position, 0.0, size - 1.0)
    return tf.nn.relu(1 - tf.abs(position[:, :, None] - tf.range(size, dtype=tf.float32)))


def crop_resize_mirror(images, box):
    """Crop every image to its ``box``, resize it back to its size and mirror it if drawn.

    One matrix product resamples the rows, one the columns: ``rows @ image @ columns^T``.
    """
    height, width = images.shape[1], images.shape[2]
    rows = resampling(box["top"], box["height"], height)
    columns = resampling(box["left"], box["width"], width, box["mirror"])
    images = tf.einsum("bih,bhwc->biwc", rows, images)
    return tf.einsum("bjw,biwc->bijc", columns, images)


def jitter_colour(images, brightness, contrast, saturation):
    """Scale brightness, then contrast (about each channel's mean, as
    ``tf.image.adjust_contrast``), then saturation (about each pixel's grey value, as PIL's
    ``ImageEnhance.Color``); pixels stay in [0, 255]."""

    def per_image(factor):
        return factor[:, None, None, None]

    images = tf.clip_by_value(images * per_image(brightness), 0.0, 255.0)
    mean = tf.reduce_mean(images, axis=(1, 2), keepdims=True)
    images = tf.clip_by_value(mean + (images - mean) * per_image(contrast), 0.0, 255.0)
    grey = tf.image.rgb_to_grayscale(images)  # ITU-R BT.601 luma weights
    return tf.clip_by_value(grey + (images - grey) * per_image(saturation), 0.0, 255.0)


@keras.saving.register_keras_serializable(package="densenet_tutorial")
class Augmentation(keras.layers.Layer):
    """The training augmentation as a Keras layer: ``augment(images, step=s)``.

    Images are RGB in [0, 255] (uint8 or float); the result is float32 whatever the
    mixed-precision policy. ``step`` is the training step (``AugmentedModel`` passes
    ``optimizer.iterations``); under ``tf.distribute`` each replica folds in its own id.
    """

    def __init__(self, seed, **kwargs):
        kwargs.setdefault("name", "augmentation")
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.seed = seed

    def call(self, images, step=0):
        images = tf.cast(images, tf.float32)
        context = tf.distribute.get_replica_context()  # None in a cross-replica context
        replica = context.replica_id_in_sync_group if context is not None else 0
        drawn = draw(random_key(self.seed, step, replica), tf.shape(images)[0])
        images = crop_resize_mirror(images, drawn)
        return jitter_colour(images, drawn["brightness"], drawn["contrast"], drawn["saturation"])

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


def augmentation(seed=None):
    """The training augmentation (``Augmentation``), drawing from ``seed`` (None: a random one)."""
    return Augmentation(random.randrange(2**31) if seed is None else seed)
