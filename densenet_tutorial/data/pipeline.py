"""Step 5: the ``tf.data`` input pipeline, from a split to batches of RGB images and labels.

read file -> decode to RGB -> resize (in parallel) -> cache -> shuffle (training only) ->
batch -> prefetch. ``training_epochs`` strings the training epochs together, each shuffled by
the seed and its number, so that a resumed run replays the right epoch.

Images are RGB in [0, 255], uint8 as decoded: four times less memory to cache and to move
than float32, and the model casts its input itself. Labels are float32, 0 for ``cat`` and 1
for ``dog`` (``CLASS_NAMES``). Validation and test batches come in the split's order, every
epoch the same.

The random augmentation is *not* part of this pipeline: ``augment.augmentation()`` is applied
inside the training step (``densenet_tutorial.training.AugmentedModel``), on the GPU that
trains. On two CPU cores (a Colab runtime's) Keras augmentation layers in ``tf.data`` managed
66-198 images/s at 224 px, fewer than a GPU trains; from the cache this pipeline delivers
thousands (see ``docs/benchmarks.md``).
"""

import functools
from pathlib import Path

import numpy as np
import tensorflow as tf

from densenet_tutorial.data.layouts import CLASS_NAMES
from densenet_tutorial.data.split import read_split
from densenet_tutorial.errors import SettingError

AUTOTUNE = tf.data.AUTOTUNE


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


def image_files(split_dir, part, root=None):
    """The ``(path, label)`` pairs of one part of a split, in the split's order, as a
    ``tf.data.Dataset``, and how many there are."""
    recorded_root, rows = read_split(split_dir, part)
    root = Path(root) if root else recorded_root
    paths = [str(root / path) for path, _ in rows]
    labels = np.array([CLASS_NAMES.index(label) for _, label in rows], np.float32)
    return tf.data.Dataset.from_tensor_slices((paths, labels)), len(paths)


def decode(files, image_size):
    """Read, decode and resize the images of ``(path, label)`` pairs, in parallel."""
    return files.map(lambda path, label: (load_image(path, image_size), label), AUTOTUNE)


def make_dataset(split_dir, part, image_size=224, batch_size=32, shuffle=False, cache=True,
                 seed=0, root=None):  # fmt: skip
    """A ``tf.data.Dataset`` of ``(images, labels)`` batches of one part of a split.

    - ``part``: ``"train"``, ``"val"`` or ``"test"``; ``split_dir`` as returned by
      ``prepare``. ``root`` is where the images are now, if they moved since ``prepare``.
    - ``shuffle``: a new order every epoch; without it the split's order. (Training uses
      ``training_epochs``, where the order of epoch e depends only on the seed and e.)
    - ``cache``: keep the decoded uint8 images in memory after the first epoch, so later
      epochs skip reading and decoding (17,000 images at 224 px take 2.6 GB).
    - Images are ``(batch, image_size, image_size, 3)`` RGB uint8 in [0, 255]; labels
      float32 ``(batch,)``, 0 = cat and 1 = dog.
    """
    dataset, count = image_files(split_dir, part, root)
    if shuffle and not cache:
        dataset = dataset.shuffle(count, seed=seed)  # shuffle names, not decoded images
    dataset = decode(dataset, image_size)
    if cache:
        dataset = dataset.cache()
    if shuffle and cache:
        # The cache replays the first epoch's order: shuffle after it. The buffer holds
        # references to the cached images, not copies.
        dataset = dataset.shuffle(count, seed=seed)
    return dataset.batch(batch_size).prefetch(AUTOTUNE)


def training_epochs(split_dir, epochs, image_size=224, batch_size=32, seed=0,
                    steps_per_epoch=None, root=None):  # fmt: skip
    """The training part as one stream of batches, epoch after epoch, for ``epochs`` (a range).

    Epoch e is the whole part shuffled with a seed made of ``seed`` and e (and TensorFlow's
    global seed, which ``train`` sets to ``seed``), whatever ran before it: a run resumed at
    epoch e (``epochs=range(e, total)``) sees the order the uninterrupted run saw.
    ``steps_per_epoch`` caps the batches of each epoch (quick mode). The decoded images are
    cached in memory while the first epoch reads them; later epochs read them from there.
    ``Model.fit`` needs ``steps_per_epoch=`` with this stream: ``ceil(images / batch_size)``,
    or the cap.
    """
    if not epochs:
        raise SettingError(f"epochs={epochs!r} holds no epoch.")
    files, count = image_files(split_dir, "train", root)
    images = decode(files, image_size).cache()

    def epoch(number):
        order = images.shuffle(count, seed=seed * 2**20 + number, reshuffle_each_iteration=False)
        batches = order.batch(batch_size)
        return batches.take(steps_per_epoch) if steps_per_epoch else batches

    return functools.reduce(tf.data.Dataset.concatenate, map(epoch, epochs)).prefetch(AUTOTUNE)
