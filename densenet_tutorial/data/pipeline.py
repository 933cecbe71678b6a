"""Step 5: the ``tf.data`` input pipeline, from a split to batches of RGB images and labels.

read file -> decode to RGB -> resize (in parallel) -> cache -> shuffle (training only) ->
batch -> prefetch.

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

from pathlib import Path

import numpy as np
import tensorflow as tf

from densenet_tutorial.data.layouts import CLASS_NAMES
from densenet_tutorial.data.split import read_split

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


def make_dataset(split_dir, part, image_size=224, batch_size=32, shuffle=False, cache=True,
                 seed=0, root=None):  # fmt: skip
    """A ``tf.data.Dataset`` of ``(images, labels)`` batches of one part of a split.

    - ``part``: ``"train"``, ``"val"`` or ``"test"``; ``split_dir`` as returned by
      ``prepare``. ``root`` is where the images are now, if they moved since ``prepare``.
    - ``shuffle``: a new order every epoch (training); without it the split's order.
    - ``cache``: keep the decoded uint8 images in memory after the first epoch, so later
      epochs skip reading and decoding (17,000 images at 224 px take 2.6 GB).
    - Images are ``(batch, image_size, image_size, 3)`` RGB uint8 in [0, 255]; labels
      float32 ``(batch,)``, 0 = cat and 1 = dog.
    """
    recorded_root, rows = read_split(split_dir, part)
    root = Path(root) if root else recorded_root
    paths = [str(root / path) for path, _ in rows]
    labels = np.array([CLASS_NAMES.index(label) for _, label in rows], np.float32)
    dataset = tf.data.Dataset.from_tensor_slices((paths, labels))
    if shuffle and not cache:
        dataset = dataset.shuffle(len(paths), seed=seed)  # shuffle names, not decoded images
    dataset = dataset.map(lambda path, label: (load_image(path, image_size), label), AUTOTUNE)
    if cache:
        dataset = dataset.cache()
    if shuffle and cache:
        # The cache replays the first epoch's order: shuffle after it. The buffer holds
        # references to the cached images, not copies.
        dataset = dataset.shuffle(len(paths), seed=seed)
    return dataset.batch(batch_size).prefetch(AUTOTUNE)
