"""The Cats-vs-Dogs data, one step per module:

1. ``download``: get the images with kagglehub (or use a folder you have);
2. ``layouts``: find the labelled images, whatever the folder layout;
3. ``verify``: decode every file once, set aside the broken ones; ``copies``: find the
   copies among the others (the same bytes, or the same photo resized, cropped, mirrored);
4. ``split``: a stratified, deterministic 17,000 / 4,000 / 4,000 split that keeps copies
   together;
5. ``pipeline``: a fast ``tf.data`` input pipeline; ``augment``: the training augmentation.

``prepare`` runs steps 1 to 4 and ``make_dataset`` is step 5; ``synth`` generates a
learnable stand-in data set for tests and offline demos. Nothing here knows the model.

>>> split_dir = prepare()  # doctest: +SKIP
>>> train = make_dataset(split_dir, "train", shuffle=True)  # doctest: +SKIP
"""

import importlib
from pathlib import Path

from densenet_tutorial.data.copies import copy_groups, describe_copies, record_copies
from densenet_tutorial.data.download import DEFAULT_HANDLE, download_dataset
from densenet_tutorial.data.layouts import CLASS_NAMES, LAYOUTS, find_images
from densenet_tutorial.data.split import PARTS, read_split, write_split
from densenet_tutorial.data.synth import synthesize
from densenet_tutorial.data.verify import check_images, keep_valid, photo_features, verify_images
from densenet_tutorial.project import data_dir

PIPELINE_NAMES = {"augmentation": "augment", "make_dataset": "pipeline"}  # name: module

__all__ = [
    "CLASS_NAMES", "DEFAULT_HANDLE", "LAYOUTS", "PARTS", "augmentation", "describe_copies",
    "download_dataset", "find_images",
    "make_dataset", "prepare", "read_split", "synthesize", "verify_images", "write_split",
]  # fmt: skip


def prepare(source=None, handle=None, out=None, seed=0, val_per_class=2000, test_per_class=2000,
            workers=None, progress=True):  # fmt: skip
    """Download (or take ``source``), check every image, find the copies and split: returns
    ``OUT/splits``.

    ``out`` defaults to ``data/cats-vs-dogs`` in the checkout you work in (else the
    working directory). Writes there ``rejected.csv``, ``checked.csv`` (the verdict cache),
    ``copies.json`` (the pairs of copies) and ``splits/``; never writes into ``source``.
    """
    out = Path(out).expanduser().resolve() if out else data_dir() / "cats-vs-dogs"
    if source:
        folder, handle = Path(source), None
    else:
        folder, handle = download_dataset(handle)
    root, files = find_images(folder, out)
    verdicts = check_images(root, files, out, workers=workers, progress=progress)
    valid = keep_valid(files, verdicts, out)
    pairs = record_copies(photo_features(valid, verdicts), out)
    return write_split(
        valid, out, root, seed=seed, val_per_class=val_per_class, test_per_class=test_per_class,
        groups=copy_groups(pairs), handle=handle, rejected=len(files) - len(valid),
    )  # fmt: skip


def __getattr__(name):
    """Import TensorFlow only when the pipeline or the augmentation is used (PEP 562).

    Checking files runs in fresh worker processes that import this package; keeping
    TensorFlow out of them saves seconds and hundreds of megabytes each.
    """
    if name in PIPELINE_NAMES:
        module = importlib.import_module(f"densenet_tutorial.data.{PIPELINE_NAMES[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
