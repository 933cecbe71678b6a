"""How fast the data steps run on this machine, on generated 500x375 JPEGs.

- ``benchmark_verification``: files per second of the full check of ``verify``;
- ``benchmark_pipeline``: images per second of ``make_dataset`` against
  ``keras.utils.image_dataset_from_directory`` with the same augmentation, epoch by epoch
  (the first epoch decodes; later ones read ``make_dataset``'s cache).

``scripts/bench_data.py`` prints both; the ``bench`` command reuses them.
"""

import tempfile
import time
from pathlib import Path

from densenet_tutorial.data.layouts import find_images
from densenet_tutorial.data.synth import synthesize
from densenet_tutorial.data.verify import verify_images


def benchmark_verification(per_class=12500, workers=None, workdir=None):
    """``{"files": n, "files_per_second": x, "rerun_seconds": s}`` for checking generated images.

    Generating 25,000 images (the default) takes a few minutes on two cores.
    """
    with tempfile.TemporaryDirectory(dir=workdir) as folder:
        source, out = Path(folder) / "images", Path(folder) / "out"
        synthesize(source, per_class, layout="petimages")
        root, files = find_images(source, out)
        start = time.perf_counter()
        verify_images(root, files, out, workers=workers)
        seconds = time.perf_counter() - start
        start = time.perf_counter()
        verify_images(root, files, out, workers=workers, progress=False)
        rerun = time.perf_counter() - start
    return {"files": len(files), "files_per_second": len(files) / seconds, "rerun_seconds": rerun}


def images_per_second(dataset, epochs):
    """Images per second of each of ``epochs`` full passes over ``dataset``."""
    rates = []
    for _ in range(epochs):
        start, count = time.perf_counter(), 0
        for images, _ in dataset:
            count += int(images.shape[0])
        rates.append(count / (time.perf_counter() - start))
    return rates


def keras_loader(folder, image_size, batch_size, augment):
    """The keras.io recipe: ``image_dataset_from_directory``, then ``augment`` mapped on batches."""
    import keras
    import tensorflow as tf

    dataset = keras.utils.image_dataset_from_directory(
        folder, label_mode="binary", image_size=(image_size, image_size), batch_size=batch_size,
        seed=0, verbose=False,
    )  # fmt: skip
    if augment:
        dataset = dataset.map(lambda x, y: (augment(x, training=True), y), tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def benchmark_pipeline(per_class=1000, image_size=224, batch_size=32, epochs=2, workdir=None):
    """Images per second, per epoch, of ``make_dataset`` and of the Keras loader.

    Returns ``{"images": n, "augment": {name: [epoch 1, epoch 2, ...]}, "plain": {...}}``:
    under ``"augment"`` both pipelines apply ``augmentation()`` to training batches, under
    ``"plain"`` neither does (decoding and caching alone). ``name`` is ``"make_dataset"``
    or ``"image_dataset_from_directory"``. Both read the same generated 500x375 JPEGs:
    ``make_dataset`` its training part (68 % of them), Keras the whole folder.
    """
    from densenet_tutorial.data import prepare
    from densenet_tutorial.data.pipeline import augmentation, make_dataset

    results = {"images": 2 * per_class}
    with tempfile.TemporaryDirectory(dir=workdir) as folder:
        source = Path(folder) / "images"
        synthesize(source, per_class, layout="petimages")
        split_dir = prepare(source=source, out=Path(folder) / "out", progress=False)
        for mode, augment in (("augment", augmentation(seed=0)), ("plain", False)):
            ours = make_dataset(split_dir, "train", image_size, batch_size, training=True,
                                augment=augment)  # fmt: skip
            theirs = keras_loader(source / "PetImages", image_size, batch_size, augment)
            results[mode] = {
                "make_dataset": images_per_second(ours, epochs),
                "image_dataset_from_directory": images_per_second(theirs, epochs),
            }
    return results
