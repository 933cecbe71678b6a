"""Step 2: find the labelled images in a folder, whatever layout its Kaggle handle uses.

A file's label comes from the nearest folder named ``cat``/``cats``/``dog``/``dogs`` (any
case) above it, or else from its own name ``cat.N.jpg``/``dog.N.jpg``. These two rules
read every layout in ``LAYOUTS``; files they do not label (``test/test/1.jpg``,
``sampleSubmission.csv``) are not part of the data set. The competition ships its images
as ``train.zip``: that archive is unpacked into the output folder, never next to it.
Nothing is ever written into the source folder (it may be a read-only mount).
"""

import re
import shutil
import tempfile
import zipfile
from collections import Counter
from pathlib import Path, PurePosixPath

from densenet_tutorial.errors import MissingInputError, SettingError

CLASS_NAMES = ("cat", "dog")
"""Label 0 is ``cat``, label 1 is ``dog`` (the model's single logit is "dog-ness")."""

LAYOUTS = {
    "class-folders": "{part}/{label}s/{label}.{n}.jpg",  # salader/dogs-vs-cats
    "train-train": "train/train/{label}.{n}.jpg",  # biaiscience/dogs-vs-cats
    "flat": "train/{label}.{n}.jpg",  # the competition's train.zip, unpacked
    "petimages": "PetImages/{Label}/{n}.jpg",  # shaunthesheep/microsoft-catsvsdogs-dataset
    "competition": "train.zip:train/{label}.{n}.jpg",  # competition dogs-vs-cats, as downloaded
}
"""Where each known layout keeps a labelled image (``{part}`` is ``train`` or ``test``).

``synthesize`` writes these layouts (as the Kaggle handles lay them out: ``salader`` class
folders under ``train/`` and ``test/``, ``biaiscience`` ``train/train/cat.N.jpg``, Microsoft's
``PetImages/Cat/N.jpg``, the competition's ``train.zip``) and the tests read them back."""

FOLDER_LABELS = {"cat": "cat", "cats": "cat", "dog": "dog", "dogs": "dog"}
FILE_NAME_LABEL = re.compile(r"^(cat|dog)\.\d+\.\w+$", re.IGNORECASE)


def label_of(relative_path):
    """``"cat"``, ``"dog"`` or None for a path relative to the source root (``/``-separated)."""
    parts = PurePosixPath(relative_path).parts
    for folder in reversed(parts[:-1]):
        if folder.lower() in FOLDER_LABELS:
            return FOLDER_LABELS[folder.lower()]
    match = FILE_NAME_LABEL.match(parts[-1])
    return match.group(1).lower() if match else None


def list_files(root):
    """Every file under ``root`` as a sorted list of ``/``-separated relative paths."""
    return sorted(path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file())


def find_images(source, out):
    """The image root and its labelled files ``[(relative_path, label), ...]``, sorted.

    ``source`` is the folder a user or kagglehub gave; ``out`` is where an archive may be
    unpacked. Raises FileNotFoundError for a missing folder and ValueError for an empty one,
    an unknown layout (the message says what was found) or a single class.
    """
    source = Path(source).expanduser().resolve()
    if not source.is_dir():
        raise MissingInputError(f"The source folder {source} does not exist (or is not a folder).")
    files = list_files(source)
    if not files:
        raise SettingError(f"The source folder {source} is empty.")
    root = source
    labelled = [(path, label_of(path)) for path in files if label_of(path)]
    archives = [path for path in files if path.lower().endswith(".zip")]
    if not labelled and archives:
        root = unpack_archives(source, archives, Path(out) / "unpacked")
        labelled = [(path, label_of(path)) for path in list_files(root) if label_of(path)]
    if not labelled and label_of(f"{source.name}/{files[0]}"):
        raise SettingError(
            f"{source} is a folder of {label_of(source.name + '/x')} images only: both cats and "
            f"dogs are needed. Point --source at its parent, {source.parent}."
        )
    if not labelled:
        raise SettingError(describe_unknown_layout(source, files))
    classes = Counter(label for _, label in labelled)
    if len(classes) < len(CLASS_NAMES):
        (only,) = classes
        raise SettingError(
            f"{source} holds {only} images only ({classes[only]:,} files): both cats and dogs "
            "are needed. Point --source at the folder that holds both classes."
        )
    return root, labelled


def unpack_archives(source, archives, destination):
    """Unpack the zip files that hold labelled images into ``destination`` (once).

    The archives are unpacked into a temporary folder that is renamed when complete, so an
    interrupted run is redone rather than half-used.
    """
    if destination.is_dir():
        return destination
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(dir=destination.parent, prefix=".unpacking-"))
    try:
        for archive in archives:
            with zipfile.ZipFile(source / archive) as zipped:
                members = [name for name in zipped.namelist() if label_of(name)]
                zipped.extractall(partial, members)
        partial.rename(destination)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return destination


def describe_unknown_layout(source, files):
    """An error message saying what is in ``source`` and which layouts were expected."""
    folders = sorted({str(PurePosixPath(path).parent) for path in files})
    suffixes = Counter(PurePosixPath(path).suffix.lower() or "(none)" for path in files)
    expected = "\n".join(f"  {name}: {pattern}" for name, pattern in LAYOUTS.items())
    return (
        f"No cat or dog images found in {source}. It holds {len(files):,} files "
        f"(by extension: {', '.join(f'{s} {n:,}' for s, n in suffixes.most_common(5))}) "
        f"in folders {', '.join(folders[:5])}{' ...' if len(folders) > 5 else ''}, "
        f"for example {', '.join(files[:3])}.\nExpected one of these layouts:\n{expected}"
    )
