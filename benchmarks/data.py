"""How fast the data steps run on this machine, on generated 500x375 JPEGs.

    python -m benchmarks.data [--verify-per-class 12500] [--pipeline-per-class 1000]

- ``benchmark_verification``: files per second of the full check of ``verify``;
- ``measure_pipeline``: images per second, epoch by epoch, of the training input pipeline
  (``make_dataset``: decode, cache, shuffle, uint8; the augmentation runs in the training
  step), of the pipeline before it (the same with the former augmentation,
  ``legacy.KerasLayersAugmentation``, mapped in ``tf.data``, on the CPU), and of
  ``keras.utils.image_dataset_from_directory`` with that augmentation (keras.io's recipe).
  Epoch 1 decodes the files; later epochs read ``make_dataset``'s cache.
"""

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

from densenet_tutorial.data import find_images, prepare, read_split, synthesize, verify_images


def benchmark_verification(per_class=12500, workers=None, workdir=None):
    """``{"files": n, "files_per_second": x, "rerun_seconds": s}`` for checking generated images."""
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


def with_cpu_augmentation(dataset, augment):
    """``augment`` mapped on the batches in ``tf.data``: on the CPU, as it used to be."""
    import tensorflow as tf

    augmented = dataset.map(lambda x, y: (augment(x), y), tf.data.AUTOTUNE)
    return augmented.prefetch(tf.data.AUTOTUNE)


def keras_loader(folder, image_size, batch_size):
    """keras.io's recipe: ``image_dataset_from_directory`` of ``folder/{cat,dog}``."""
    import keras

    return keras.utils.image_dataset_from_directory(
        folder, label_mode="binary", image_size=(image_size, image_size), batch_size=batch_size,
        seed=0, verbose=False,
    )  # fmt: skip


def training_view(split_dir, folder):
    """Hard links to the training images in ``folder/cat`` and ``folder/dog``, for Keras."""
    root, rows = read_split(split_dir, "train")
    for path, label in rows:
        (folder / label).mkdir(parents=True, exist_ok=True)
        os.link(root / path, folder / label / path.replace("/", "_"))
    return folder


def measure_pipeline(per_class=1000, image_size=224, batch_size=32, epochs=2, trials=1,
                     workdir=None):  # fmt: skip
    """Images per second, per epoch, of the three pipelines on the same training images.

    Returns ``{"images": n, "pipelines": {name: [epoch 1, epoch 2, ...]}}`` for the training
    part of ``2 * per_class`` generated JPEGs. Each figure is the best of ``trials`` runs,
    which filters out other processes slowing this one down.
    """
    from benchmarks.legacy import KerasLayersAugmentation
    from densenet_tutorial.data import make_dataset

    with tempfile.TemporaryDirectory(dir=workdir) as folder:
        source = Path(folder) / "images"
        synthesize(source, per_class, layout="petimages")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "fewer than 25,000 images: 68/16/16"
            split_dir = prepare(source=source, out=Path(folder) / "out", progress=False)
        view = training_view(split_dir, Path(folder) / "keras")

        def pipelines():
            ours = make_dataset(split_dir, "train", image_size, batch_size, shuffle=True)
            augment = KerasLayersAugmentation(seed=0)
            return {
                "make_dataset": ours,
                "make_dataset + augmentation in tf.data": with_cpu_augmentation(ours, augment),
                "image_dataset_from_directory + augmentation": with_cpu_augmentation(
                    keras_loader(view, image_size, batch_size), augment
                ),
            }

        runs = {}
        for _ in range(trials):
            for name, dataset in pipelines().items():
                runs.setdefault(name, []).append(images_per_second(dataset, epochs))
        return {
            "images": len(read_split(split_dir, "train")[1]),
            "pipelines": {
                name: [max(epoch) for epoch in zip(*rates, strict=True)]
                for name, rates in runs.items()
            },
        }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--verify-per-class", type=int, default=12500)
    parser.add_argument("--pipeline-per-class", type=int, default=1000)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--trials", type=int, default=3, help="best of N runs (3)")
    args = parser.parse_args()
    if args.verify_per_class:
        result = benchmark_verification(args.verify_per_class)
        print(f"verification: {result['files']:,} files, {result['files_per_second']:,.0f} "
              f"files/s; rerun with cached verdicts {result['rerun_seconds']:.2f} s")  # fmt: skip
    if args.pipeline_per_class:
        result = measure_pipeline(args.pipeline_per_class, args.image_size, args.batch_size,
                                  trials=args.trials)  # fmt: skip
        print(f"pipeline: {result['images']:,} training images of about 500x375 px, at "
              f"{args.image_size} px, batch {args.batch_size}, best of {args.trials}")  # fmt: skip
        for name, rates in result["pipelines"].items():
            print(f"  {name}: " + ", ".join(f"epoch {e} {r:,.0f} img/s"
                                            for e, r in enumerate(rates, 1)))  # fmt: skip


if __name__ == "__main__":
    main()
