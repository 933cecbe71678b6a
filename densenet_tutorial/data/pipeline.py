"""Step 5: the ``tf.data`` input pipeline, from a split to batches of RGB images and labels.

read file -> decode to RGB -> resize (in parallel) -> cache -> shuffle (training only) ->
batch -> augment (training only, Keras preprocessing layers) -> prefetch.

Images are RGB in [0, 255] (the model scales them itself): uint8 as decoded, or float32
after augmentation (Keras layers compute in float). uint8 is four times less memory to
move: a cached epoch without augmentation runs about ten times faster than with a float32
cast (measured here), and the model casts its input itself. Labels are float32, 0 for
``cat`` and 1 for ``dog`` (``CLASS_NAMES``). Validation and test batches come in the
split's order, every epoch the same.
"""

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from densenet_tutorial.data.layouts import CLASS_NAMES
from densenet_tutorial.data.split import read_split

AUTOTUNE = tf.data.AUTOTUNE


def augmentation(seed=None):
    """The training augmentation: mirror, rotate up to +-18 degrees, zoom +-10 %, contrast.

    Keras preprocessing layers, like the ``ImageDataGenerator`` settings of seed 001 but
    milder (rotation 40 degrees and shear distort the small synthetic shapes too much).
    They draw a new transformation for every image of every batch.
    """
    return keras.Sequential(
        [
            layers.RandomFlip("horizontal", seed=seed),
            layers.RandomRotation(0.05, fill_mode="reflect", seed=seed),
            layers.RandomZoom(0.1, fill_mode="reflect", seed=seed),
            layers.RandomContrast(0.1, seed=seed),
        ],
        name="augmentation",
    )


def load_image(path, image_size):
    """Read and decode one image to ``image_size`` x ``image_size`` RGB uint8.

    ``decode_image`` reads JPEG, PNG, GIF and BMP whatever the file's extension, and
    ``channels=3`` turns grayscale and CMYK images into RGB. The image is *squashed* to a
    square (bilinear, the aspect ratio is not kept), like
    ``keras.utils.image_dataset_from_directory``'s default: a 500x375 photo is shrunk
    more across than down, and nothing of the animal is cropped away.
    """
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    image = tf.image.resize(image, (image_size, image_size))
    return tf.saturate_cast(tf.round(image), tf.uint8)


def make_dataset(split_dir, part, image_size=224, batch_size=32, training=False, augment=True,
                 cache=True, seed=0, root=None):  # fmt: skip
    """A ``tf.data.Dataset`` of ``(images, labels)`` batches of one part of a split.

    - ``part``: ``"train"``, ``"val"`` or ``"test"``; ``split_dir`` as returned by
      ``prepare``. ``root`` is where the images are now, if they moved since ``prepare``.
    - ``training``: shuffle every epoch and apply ``augment`` (True for ``augmentation()``,
      or any Keras layer, or False). Without it the order is the split's, every epoch.
    - ``cache``: keep the decoded uint8 images in memory after the first epoch, so later
      epochs skip reading and decoding (17,000 images at 224 px take 2.6 GB).
    - Images are ``(batch, image_size, image_size, 3)`` RGB in [0, 255], uint8 (float32
      when augmented); labels float32 ``(batch,)``, 0 = cat and 1 = dog.
    """
    recorded_root, rows = read_split(split_dir, part)
    root = Path(root) if root else recorded_root
    paths = [str(root / path) for path, _ in rows]
    labels = np.array([CLASS_NAMES.index(label) for _, label in rows], np.float32)
    dataset = tf.data.Dataset.from_tensor_slices((paths, labels))
    if training and not cache:
        dataset = dataset.shuffle(len(paths), seed=seed)  # shuffle names, not decoded images
    dataset = dataset.map(lambda path, label: (load_image(path, image_size), label), AUTOTUNE)
    if cache:
        dataset = dataset.cache()
    if training and cache:
        # The cache replays the first epoch's order: shuffle after it. The buffer holds
        # references to the cached images, not copies.
        dataset = dataset.shuffle(len(paths), seed=seed)
    dataset = dataset.batch(batch_size)
    if training and augment:
        augment = augmentation(seed) if augment is True else augment
        dataset = dataset.map(lambda x, y: (augment(x, training=True), y), AUTOTUNE)
    return dataset.prefetch(AUTOTUNE)
