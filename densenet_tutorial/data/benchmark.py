"""How fast the data steps run on this machine, on generated 500x375 JPEGs.

- ``benchmark_verification``: files per second of the full check of ``verify``;
- ``benchmark_pipeline``: images per second of ``make_dataset`` against
  ``keras.utils.image_dataset_from_directory`` with the same augmentation, epoch by epoch
  (the first epoch decodes; later ones read ``make_dataset``'s cache).

``scripts/bench_data.py`` prints both; the ``bench`` command reuses them.
"""

import os
import tempfile
import time
import warnings
from pathlib import Path

from densenet_tutorial.data.layouts import find_images
from densenet_tutorial.data.split import read_split
from densenet_tutorial.data.synth import synthesize
from densenet_tutorial.data.verify import verify_images


def benchmark_verification(per_class=12500, workers=None, workdir=None):
    """``{"files": n, "files_per_second": x, "rerun_seconds": s}`` for checking generated images.

    Generating 25,000 images (the default) takes a few minutes on two cores.
    """
    with tempfile.TemporaryDirectory(dir=workdir) as folder:
        source, out = Path(folder) / "images", Path(folder) / "out"
        synthesize(source, per_class, layout="petimages", progress=True)
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


def training_view(split_dir, folder):
    """Hard links to the training images in ``folder/cat`` and ``folder/dog``, for Keras."""
    root, rows = read_split(split_dir, "train")
    for path, label in rows:
        (folder / label).mkdir(parents=True, exist_ok=True)
        os.link(root / path, folder / label / path.replace("/", "_"))
    return folder


def benchmark_pipeline(per_class=1000, image_size=224, batch_size=32, epochs=2, trials=1,
                       workdir=None):  # fmt: skip
    """Images per second, per epoch, of ``make_dataset`` and of the Keras loader.

    Returns ``{"images": n, "augment": {name: [epoch 1, epoch 2, ...]}, "plain": {...}}``:
    under ``"augment"`` both pipelines apply ``augmentation()`` to training batches, under
    ``"plain"`` neither does (decoding and caching alone). ``name`` is ``"make_dataset"``
    or ``"image_dataset_from_directory"``; both read the same ``n`` generated 500x375 JPEGs
    (the training part of ``2 * per_class``). Each figure is the best of ``trials`` runs,
    which filters out other processes slowing this one down.
    """
    from densenet_tutorial.data import prepare
    from densenet_tutorial.data.pipeline import augmentation, make_dataset

    results = {}
    with tempfile.TemporaryDirectory(dir=workdir) as folder:
        source = Path(folder) / "images"
        synthesize(source, per_class, layout="petimages")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "fewer than 25,000 images: 68/16/16"
            split_dir = prepare(source=source, out=Path(folder) / "out", progress=False)
        view = training_view(split_dir, Path(folder) / "keras")
        results["images"] = len(read_split(split_dir, "train")[1])
        for mode, augment in (("augment", augmentation(seed=0)), ("plain", False)):
            runs = {"make_dataset": [], "image_dataset_from_directory": []}
            for _ in range(trials):
                ours = make_dataset(split_dir, "train", image_size, batch_size, training=True,
                                    augment=augment)  # fmt: skip
                theirs = keras_loader(view, image_size, batch_size, augment)
                runs["make_dataset"].append(images_per_second(ours, epochs))
                runs["image_dataset_from_directory"].append(images_per_second(theirs, epochs))
            results[mode] = {
                name: [max(epoch) for epoch in zip(*rates, strict=True)]
                for name, rates in runs.items()
            }
    return results
