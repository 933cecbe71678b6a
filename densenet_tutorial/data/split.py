"""Step 4: a stratified, deterministic train / validation / test split.

Validation and test take ``val_per_class`` and ``test_per_class`` images of each class
(2,000 by default) and training takes the rest: the 25,000 Kaggle images give exactly
17,000 / 4,000 / 4,000, the split this tutorial uses. With fewer images than that (Microsoft's
PetImages after cleaning, a quick run) the parts keep the same proportions, 68 / 16 / 16,
with a warning.

Which image goes where depends only on the seed, the image's path relative to the source
root, and the groups of copies (``copies``): images are ordered by a hash of ``seed/path``,
not by the file system's listing order and not by where the folder lives, so the same files
give the same split on any machine (with the same OpenCV: a near copy at the threshold could
be judged otherwise by another decoder). All copies of a photo land in the same part, so no
validation or test photo has a copy in training, and the counts stay exact; a group labelled
both cat and dog goes to training, where it cannot bias a score. The manifests are written
atomically, ``meta.json`` last; it records how many groups there were and where they went.
"""

import hashlib
import json
import warnings
from collections import Counter
from pathlib import Path

from densenet_tutorial.data.files import (
    DamagedFile,
    read_csv,
    read_json,
    recover,
    set_aside,
    write_atomically,
    write_csv,
)
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


def assign_parts(files, counts, seed=0, groups=()):
    """``{part: [(relative_path, label), ...]}``, each part sorted by path.

    Images are placed in units: a group of copies (``groups``: lists of paths) or a single
    image. Each class's units are ordered by the ``split_key`` of their first path;
    validation takes each unit that still fits in its count, then test, and training the
    rest, so the counts are exact and every copy of a photo is in the same part. A group
    labelled both cat and dog goes to training. Raises RunError if the groups leave no way
    to fill validation and test exactly (groups larger than what is left to fill).
    """
    labels = dict(files)
    grouped = copy_groups_among(groups, labels)
    in_group = {path for group in grouped for path in group}
    units = sorted([[path] for path in labels if path not in in_group] + grouped)
    parts = {part: [] for part in PARTS}
    for unit in units:
        if len({labels[path] for path in unit}) > 1:
            parts["train"] += unit
    for label in sorted(counts["train"]):
        ordered = sorted(
            (unit for unit in units if {labels[path] for path in unit} == {label}),
            key=lambda unit: split_key(unit[0], seed),
        )
        room = {"val": counts["val"][label], "test": counts["test"][label]}
        for unit in ordered:
            part = next((held for held in ("val", "test") if len(unit) <= room[held]), "train")
            if part != "train":
                room[part] -= len(unit)
            parts[part] += unit
        if room["val"] or room["test"]:
            raise RunError(
                f"Could not give validation and test exactly {counts['val'][label]:,} and "
                f"{counts['test'][label]:,} {label} images while keeping copies together: "
                "the groups of copies are too large. Lower --val-per-class/--test-per-class."
            )
    return {part: sorted((path, labels[path]) for path in paths) for part, paths in parts.items()}


def copy_groups_among(groups, labels):
    """The groups (sorted lists of paths) restricted to the images in ``labels``, if they
    still hold two or more."""
    groups = [sorted(path for path in group if path in labels) for group in groups]
    return [group for group in groups if len(group) > 1]


def placement(parts, groups, labels):
    """What ``meta.json`` records of the groups of copies: how many, and in which part."""
    part_of = {path: part for part, pairs in parts.items() for path, _ in pairs}
    groups = copy_groups_among(groups, labels)
    return {
        "groups": len(groups),
        "images": sum(len(group) for group in groups),
        "labelled_both": sum(len({labels[path] for path in group}) > 1 for group in groups),
        "placed": {part: sum(part_of[group[0]] == part for group in groups) for part in PARTS},
    }


def write_split(files, out, root, seed=0, val_per_class=2000, test_per_class=2000, groups=(),
                **about):  # fmt: skip
    """Split ``files`` and write ``OUT/splits/{train,val,test}.csv`` and ``meta.json``.

    ``groups`` are the groups of copies (lists of paths) to keep together. ``about`` is
    recorded in ``meta.json`` as is (for example the handle and its version, the number of
    rejected files). Returns the split folder.
    """
    class_sizes = Counter(label for _, label in files)
    counts = split_counts(dict(class_sizes), val_per_class, test_per_class)
    parts = assign_parts(files, counts, seed, groups)
    split_dir = Path(out) / "splits"
    for part in PARTS:
        write_csv(split_dir / f"{part}.csv", ("path", "label"), parts[part])
    meta = {
        "source_root": str(root),
        **about,
        "seed": seed,
        "class_names": list(CLASS_NAMES),
        "counts": {part: {"total": len(parts[part]), **counts[part]} for part in PARTS},
        "copies": placement(parts, groups, dict(files)),
    }
    write_atomically(split_dir / "meta.json", json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return split_dir


def read_split(split_dir, part):
    """``(source_root, [(relative_path, label), ...])`` of one part of a written split.

    Raises ``MissingInputError`` when there is no split and ``RunError`` when the manifest and
    ``meta.json`` disagree (an interrupted or mixed run). A damaged ``meta.json`` or manifest
    is moved to ``set-aside-TIME/`` beside the split, never deleted, and the error says to
    prepare the split again (the same photos and seed give the same split).
    """
    split_dir = Path(split_dir)
    if part not in PARTS:
        raise SettingError(f"part must be one of {', '.join(PARTS)}, not {part!r}.")
    for name in ("meta.json", f"{part}.csv"):  # a write cut off between its two renames
        recover(split_dir / name)
    if not (split_dir / "meta.json").exists():
        raise MissingInputError(
            f"No split in {split_dir}: run `python -m densenet_tutorial prepare` first."
        )
    try:
        meta = read_json(split_dir / "meta.json", keys=("counts", "source_root"))
        total = meta["counts"][part]["total"]
        if not isinstance(total, int):
            raise DamagedFile(split_dir / "meta.json", f"no count of {part}")
        rows = read_csv(split_dir / f"{part}.csv", fields=("path", "label"))
    except (KeyError, TypeError) as error:
        raise damaged_split(DamagedFile(split_dir / "meta.json", f"no count of {part}")) from error
    except DamagedFile as damage:
        raise damaged_split(damage) from damage
    if len(rows) != total:
        raise RunError(
            f"{split_dir / part}.csv has {len(rows):,} rows but meta.json says "
            f"{total:,}: rerun `python -m densenet_tutorial prepare`."
        )
    return Path(meta["source_root"]), [(row["path"], row["label"]) for row in rows]


def damaged_split(damage):
    """Set the damaged file of a split aside (beside the split) and return the error to raise."""
    out = damage.path.parent.parent
    aside = set_aside(out, [damage.path])
    return DamagedFile(
        damage.path,
        damage.reason,
        f"it is kept in {aside}. Write the split again (`python -m densenet_tutorial prepare "
        f"--out {out}` with the options you gave it, or notebook 01), then rerun: the same "
        f"photos and seed give the same split, and a run resumes where it stopped.",
    )
