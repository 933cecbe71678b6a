"""Step 4: a stratified, deterministic train / validation / test split.

Validation and test take ``val_per_class`` and ``test_per_class`` images of each class
(2,000 by default) and training takes the rest: the 25,000 Kaggle images give exactly
17,000 / 4,000 / 4,000, the split this tutorial uses. With fewer images than that (Microsoft's
PetImages after cleaning, a quick run) the parts keep the same proportions, 68 / 16 / 16,
with a warning.

Which image goes where depends only on the seed and the image's path relative to the
source root: images are ordered by a hash of ``seed/path``, not by the file system's
listing order and not by where the folder lives, so the same files give the same split
on any machine. The manifests are written atomically, ``meta.json`` last.
"""

import hashlib
import json
import warnings
from collections import Counter
from pathlib import Path

from densenet_tutorial.data.files import read_csv, write_atomically, write_csv
from densenet_tutorial.data.layouts import CLASS_NAMES
from densenet_tutorial.errors import MissingInputError, RunError, SettingError

PARTS = ("train", "val", "test")
FRACTIONS = {"train": 0.68, "val": 0.16, "test": 0.16}


def split_counts(class_sizes, val_per_class=2000, test_per_class=2000):
    """``{part: {label: count}}`` for ``class_sizes = {label: number of valid images}``.

    Fixed counts when there are enough images for them to be at most 16 % each (25,000
    images for 2,000 per class), else the proportions 68 / 16 / 16 with a warning.
    Raises ValueError when a part would get no image of some class.
    """
    total = sum(class_sizes.values())
    needed = round(len(class_sizes) * (val_per_class + test_per_class) / (1 - FRACTIONS["train"]))
    counts = {part: {} for part in PARTS}
    for label, size in sorted(class_sizes.items()):
        if total >= needed:
            counts["val"][label], counts["test"][label] = val_per_class, test_per_class
        else:
            counts["val"][label] = round(size * FRACTIONS["val"])
            counts["test"][label] = round(size * FRACTIONS["test"])
        counts["train"][label] = size - counts["val"][label] - counts["test"][label]
    sizes = ", ".join(f"{n:,} {label}" for label, n in sorted(class_sizes.items()))
    if any(n < 1 for part in PARTS for n in counts[part].values()):
        raise SettingError(
            f"Too few images to split: {sizes}. Each of train, val and test needs at least "
            "one image of each class (about 4 per class at 68/16/16); add images or lower "
            "the per-class counts."
        )
    if total < needed:
        warnings.warn(
            f"Only {total:,} valid images ({sizes}), fewer than the {needed:,} that "
            f"{val_per_class:,}/{test_per_class:,} validation/test images per class need: "
            "splitting 68/16/16 instead.",
            stacklevel=2,
        )
    return counts


def split_key(path, seed):
    """A position for ``path`` that depends only on the seed and the path itself."""
    return hashlib.sha256(f"{seed}/{path}".encode()).hexdigest()


def assign_parts(files, counts, seed=0):
    """``{part: [(relative_path, label), ...]}``, each part sorted by path.

    Each class's images are ordered by ``split_key``; validation takes the first ones,
    test the next, training the rest.
    """
    parts = {part: [] for part in PARTS}
    for label in sorted(counts["train"]):
        ordered = sorted(
            (path for path, lab in files if lab == label), key=lambda p: split_key(p, seed)
        )
        n_val, n_test = counts["val"][label], counts["test"][label]
        parts["val"] += [(path, label) for path in ordered[:n_val]]
        parts["test"] += [(path, label) for path in ordered[n_val : n_val + n_test]]
        parts["train"] += [(path, label) for path in ordered[n_val + n_test :]]
    return {part: sorted(pairs) for part, pairs in parts.items()}


def write_split(files, out, root, seed=0, val_per_class=2000, test_per_class=2000, **about):
    """Split ``files`` and write ``OUT/splits/{train,val,test}.csv`` and ``meta.json``.

    ``about`` is recorded in ``meta.json`` as is (for example the handle and its version,
    the number of rejected files). Returns the split folder.
    """
    class_sizes = Counter(label for _, label in files)
    counts = split_counts(dict(class_sizes), val_per_class, test_per_class)
    parts = assign_parts(files, counts, seed)
    split_dir = Path(out) / "splits"
    for part in PARTS:
        write_csv(split_dir / f"{part}.csv", ("path", "label"), parts[part])
    meta = {
        "source_root": str(root),
        **about,
        "seed": seed,
        "class_names": list(CLASS_NAMES),
        "counts": {part: {"total": len(parts[part]), **counts[part]} for part in PARTS},
    }
    write_atomically(split_dir / "meta.json", json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return split_dir


def read_split(split_dir, part):
    """``(source_root, [(relative_path, label), ...])`` of one part of a written split.

    Raises FileNotFoundError when there is no split and RuntimeError when the manifest and
    ``meta.json`` disagree (an interrupted or mixed run).
    """
    split_dir = Path(split_dir)
    if part not in PARTS:
        raise SettingError(f"part must be one of {', '.join(PARTS)}, not {part!r}.")
    if not (split_dir / "meta.json").exists():
        raise MissingInputError(
            f"No split in {split_dir}: run `python -m densenet_tutorial prepare` first."
        )
    meta = json.loads((split_dir / "meta.json").read_text())
    rows = [(row["path"], row["label"]) for row in read_csv(split_dir / f"{part}.csv")]
    if len(rows) != meta["counts"][part]["total"]:
        raise RunError(
            f"{split_dir / part}.csv has {len(rows):,} rows but meta.json says "
            f"{meta['counts'][part]['total']:,}: rerun `python -m densenet_tutorial prepare`."
        )
    return Path(meta["source_root"]), rows
