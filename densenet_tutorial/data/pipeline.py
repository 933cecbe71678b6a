"""Step 5: the ``tf.data`` input pipeline, from a split to batches of RGB images and labels.

read file -> decode to RGB -> resize (in parallel) -> cache -> batch -> prefetch, for
validation and test (``make_dataset``). ``training_epochs`` strings the training epochs
together, each in an order drawn from the seed and its number, so that a resumed run replays
the right epoch, in full batches only (``training_steps``); its first epoch decodes as it
goes, and later epochs take the decoded images from memory.

Images are RGB in [0, 255], uint8 as decoded: four times less memory to cache and to move
than float32, and the model casts its input itself. Labels are float32, 0 for ``cat`` and 1
for ``dog`` (``CLASS_NAMES``). Validation and test batches come in the split's order, every
epoch the same.

The random augmentation is *not* part of this pipeline: ``augment.augmentation()`` is applied
inside the training step (``densenet_tutorial.training.AugmentedModel``), on the GPU that
trains. On two CPU cores (a Colab runtime's) Keras augmentation layers in ``tf.data`` managed
66-198 images/s at 224 px, fewer than a GPU trains; from memory this pipeline delivers
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


def read_part(split_dir, part, root=None):
    """The paths and labels (``CLASS_NAMES`` indices, float32) of one part of a split, in the
    split's order, as NumPy arrays."""
    recorded_root, rows = read_split(split_dir, part)
    root = Path(root) if root else recorded_root
    paths = np.array([str(root / path) for path, _ in rows])
    labels = np.array([CLASS_NAMES.index(label) for _, label in rows], np.float32)
    return paths, labels


def image_files(split_dir, part, root=None):
    """The ``(path, label)`` pairs of one part of a split, in the split's order, as a
    ``tf.data.Dataset``, and how many there are."""
    paths, labels = read_part(split_dir, part, root)
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


def training_steps(images, batch_size, cap=None):
    """The batches of one training epoch of ``images`` images: full ones only, at most ``cap``.

    The ``images % batch_size`` left over are not trained on in that epoch (17,000 images in
    batches of 32: 531 steps, 8 images, 0.05 %, left out). A short last batch would be a
    second input shape, and under XLA (``jit_compile``) a second compile of the training step,
    minutes for DenseNet-169; refilling it from the next epoch's order would blur where an
    epoch ends, which a resumed run must find again. Every epoch has its own order, so the
    images left out differ from epoch to epoch: over 40 epochs, an image is left out of all
    of them with a probability of (8 / 17,000)^40.
    """
    steps = images // batch_size
    if steps < 1:
        raise SettingError(
            f"The training part has {images} images, fewer than one batch of {batch_size}: "
            f"choose a smaller batch size."
        )
    return min(steps, cap) if cap else steps


def epoch_order(images, seed, number):
    """The order of epoch ``number``: a permutation of ``range(images)`` drawn from ``seed``
    and ``number`` alone (NumPy's ``Generator``), whatever ran before."""
    return np.random.default_rng([seed, number]).permutation(images)


def training_epochs(split_dir, epochs, image_size=224, batch_size=32, seed=0,
                    steps_per_epoch=None, root=None):  # fmt: skip
    """The training part as one stream of full batches, epoch after epoch, for ``epochs`` (a
    range).

    Epoch e is the part in ``epoch_order(images, seed, e)``, whatever ran before it: a run
    resumed at epoch e (``epochs=range(e, total)``) sees the batches the uninterrupted run
    saw. Each epoch has ``training_steps`` batches (``steps_per_epoch``, the quick mode's
    cap, caps them); ``Model.fit`` needs that number as its ``steps_per_epoch=``.

    The first epoch of the stream reads the files in its own order, so its first batch comes
    after one batch is decoded (a shuffle buffer over decoded images would wait for all of
    them), and keeps each image in a ``tf.Variable`` on the CPU, at the image's place in the
    split (17,000 images at 224 px take 2.6 GB, as a ``cache`` would); it reads to the end of
    the part, the images it does not train on included, so that every image is kept. Later
    epochs gather their batches from there by index: each image is decoded once per run.
    (``Dataset.cache`` keeps images in the order they were read, the first epoch's, and can
    be read back only in that order or reordered by a shuffle buffer, which would make the
    order of later epochs depend on which epoch a run started at.)
    """
    if not epochs:
        raise SettingError(f"epochs={epochs!r} holds no epoch.")
    paths, labels = read_part(split_dir, "train", root)
    count = len(paths)
    steps = training_steps(count, batch_size, steps_per_epoch)
    with tf.device("/CPU:0"):  # not zeroed (seconds for 2.6 GB): each image is written first
        room = tf.raw_ops.Empty(shape=[count, image_size, image_size, 3], dtype=tf.uint8)
        kept = tf.Variable(room, trainable=False, name="decoded_training_images")

    def decode_and_keep(index, path, label):
        image = load_image(path, image_size)
        with tf.control_dependencies([kept.scatter_nd_update([[index]], [image])]):
            return tf.identity(image), label

    def epoch(number):
        order = epoch_order(count, seed, number)
        if number == epochs[0]:
            files = tf.data.Dataset.from_tensor_slices((order, paths[order], labels[order]))
            batches = files.map(decode_and_keep, AUTOTUNE).batch(batch_size, drop_remainder=True)
            return batches.enumerate().filter(lambda step, _: step < steps).map(lambda _, b: b)
        indices = tf.data.Dataset.from_tensor_slices(order[: steps * batch_size])
        return indices.batch(batch_size, drop_remainder=True).map(  # full: a static shape
            lambda batch: (tf.gather(kept, batch), tf.gather(labels, batch)), AUTOTUNE
        )

    return functools.reduce(tf.data.Dataset.concatenate, map(epoch, epochs)).prefetch(AUTOTUNE)
