"""What the notebooks share: where each one leaves its products, and how later ones find them.

Notebook 01 leaves the checked, split images under ``data/``; notebook 03 leaves a training
run under ``runs/``; notebooks 03, 04 and 05 look for them there. Each notebook can still be
opened on its own: in quick mode a missing product is made on the spot (generated images,
a short training run: minutes on a CPU); in a real run the error names the notebook to run
first.
"""

import json
from pathlib import Path

from densenet_tutorial.data import prepare, read_split, synthesize
from densenet_tutorial.data.files import write_atomically
from densenet_tutorial.errors import MissingInputError
from densenet_tutorial.model import depth

QUICK_IMAGES_PER_CLASS = 250  # generated images of each class in quick mode
QUICK_HELD_OUT_PER_CLASS = 40  # of them for validation, and as many for test (16 % each)
QUICK_DOUBTFUL_PHOTOS = 8  # photos notebook 01 shows the stand-in ImageNet network in quick mode
QUICK_DOUBTFUL_SIZE = 32  # at this side in pixels (DenseNet-169 takes 29 at least)
PREPARING = (
    "No split of the Cats-vs-Dogs photos on this runtime yet: preparing it now, as notebook "
    "01 does. kagglehub downloads the 25,000 photos (minutes, depending on the network), then "
    "every file is decoded once: 27 s for 25,000 generated 500x375 JPEGs on a 2-core CPU "
    "(measured), about as long on a 2-vCPU Colab runtime (an estimate)."
)


def data_folder(data_dir, quick):
    """``data/cats-vs-dogs`` for the Kaggle images, ``data/synthetic`` for generated ones."""
    return Path(data_dir) / ("synthetic" if quick else "cats-vs-dogs")


def prepare_images(data_dir="data", quick=False):
    """Notebook 01: get, check and split the images; return the folder that holds ``splits/``.

    Quick mode generates a small learnable stand-in, broken files and copies included (so the
    check has something to reject and to find), and the animals' masks in ``masks/`` (so that
    heatmaps can be scored), instead of downloading 25,000 photos from Kaggle.
    """
    out = data_folder(data_dir, quick)
    if not quick:
        prepare(out=out)
        return out
    synthesize(out / "images", QUICK_IMAGES_PER_CLASS, broken=True, masks=out / "masks",
               copies=True)  # fmt: skip
    held_out = QUICK_HELD_OUT_PER_CLASS
    prepare(source=out / "images", out=out, val_per_class=held_out, test_per_class=held_out)
    return out


def find_images(data_dir="data", quick=False):
    """The folder notebook 01 prepared, or prepared now if this runtime lacks it.

    A split's manifests may have survived a new runtime (on Google Drive) while its images,
    in kagglehub's cache on the runtime's disk, did not: then the images are fetched and
    checked again, which gives the same split (it depends only on the seed and the paths).
    """
    out = data_folder(data_dir, quick)
    if split_is_usable(out / "splits"):
        return out
    if not quick:
        print(PREPARING)
    return prepare_images(data_dir, quick=quick)


def split_is_usable(split_dir):
    """True if ``split_dir`` holds a finished split whose images are on this disk."""
    if not (split_dir / "meta.json").exists():
        return False
    root, rows = read_split(split_dir, "train")
    return bool(rows) and (root / rows[0][0]).exists()


RUN_SETTINGS = ("blocks", "growth_rate", "image_size", "batch_size", "epochs")


def training_settings(quick, **given):
    """Notebook 03's run: the settings ``given`` (not None), else the recipe's.

    The recipe is ``training.FULL`` (DenseNet-169, k = 32, 224 px, 40 epochs) or, in quick
    mode, ``training.QUICK``; the batch is ``training.BATCH_SIZE`` images per replica.
    """
    from densenet_tutorial.training import BATCH_SIZE, FULL, QUICK

    recipe = {**(QUICK if quick else FULL), "batch_size": BATCH_SIZE}
    settings = {
        name: recipe[name] if given.get(name) is None else given[name] for name in RUN_SETTINGS
    }
    return {**settings, "blocks": tuple(settings["blocks"])}


def trained_settings(runs_dir, quick, **given):
    """Notebooks 04-06: the settings ``given`` (not None), else those of 03's last run.

    So a learner who changes k (or the batch) in notebook 03 and runs it finds the new
    model in 04 and 05 without editing them; an explicit value still wins.
    """
    record = last_run_file(runs_dir, quick)
    last = json.loads(record.read_text()) if record.exists() else {}
    chosen = {name: value for name, value in given.items() if value is not None}
    return training_settings(quick, **{**last, **chosen})


def last_run_file(runs_dir, quick):
    """Where notebook 03 records the settings of the run it started last."""
    return Path(runs_dir) / ("last-run-quick.json" if quick else "last-run.json")


def remember_run(runs_dir, quick, settings):
    """Record ``settings`` as notebook 03's last run (read by ``trained_settings``)."""
    write_atomically(last_run_file(runs_dir, quick), json.dumps(settings, indent=2) + "\n")


def run_folder(runs_dir, quick, blocks, growth_rate, image_size, batch_size, epochs):
    """The folder of one training run, named after what sets it apart from the others.

    The batch is part of the name: after running out of memory, a smaller ``BATCH_SIZE``
    starts a new run instead of being refused by the old one's ``config.json``.
    """
    name = f"densenet{depth(blocks)}-k{growth_rate}-{image_size}px-b{batch_size}-{epochs}ep"
    return Path(runs_dir) / (name + ("-quick" if quick else ""))


def find_model(run, data_dir, quick, **settings):
    """``run/best.keras``; trained now in quick mode if missing, else an error naming 03.

    ``settings`` are those of ``training_settings`` (``blocks`` ...), the same as notebook
    03 used, so that both find the same run folder.
    """
    best = Path(run) / "best.keras"
    if best.exists():
        return best
    if not quick:
        given = ", ".join(f"{name.upper()} = {value!r}" for name, value in settings.items())
        raise MissingInputError(
            f"No trained model in {run}: run notebooks/03_train.ipynb first with {given} "
            f"(about 40 epochs on a GPU), or set QUICK = True here."
        )
    from densenet_tutorial.training import train

    train(find_images(data_dir, quick=True), run, quick=True, verbose=0, **settings)
    return best


def photo_path(photo=None):
    """The photo a notebook explains: ``photo`` if given; on Colab, one you upload there
    (``google.colab.files.upload``; the first file); else the shipped ``images/chelsea.png``
    (scikit-image's "Chelsea the cat", CC0)."""
    if photo:
        return Path(photo)
    from densenet_tutorial import colab
    from densenet_tutorial.project import package_checkout, products_dir

    if colab.on_colab():
        from google.colab import files

        uploaded = files.upload()
        if uploaded:
            name, data = next(iter(uploaded.items()))
            path = products_dir() / "uploads" / Path(name).name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            return path
    return (package_checkout() or products_dir()) / "images" / "chelsea.png"


def draw_test_images(images_dir, count, image_size, seed=0):
    """``count`` test images drawn at random, read as in training: ``(images, labels, masks)``.

    Images are float32 RGB in [0, 255], labels 0 (cat) or 1 (dog); ``masks`` are the animals'
    masks (True inside) for generated images, whose ``masks/`` folder ``synthesize`` wrote,
    else ``None``.
    """
    import cv2
    import numpy as np

    from densenet_tutorial.data import CLASS_NAMES
    from densenet_tutorial.data.pipeline import load_image
    from densenet_tutorial.data.synth import mask_path

    root, rows = read_split(Path(images_dir) / "splits", "test")
    picked = [rows[i] for i in np.random.default_rng(seed).permutation(len(rows))[:count]]
    images = np.stack([load_image(str(root / path), image_size).numpy() for path, _ in picked])
    labels = np.array([CLASS_NAMES.index(label) for _, label in picked])
    masks_dir = Path(images_dir) / "masks"
    if not masks_dir.is_dir():
        return images.astype(np.float32), labels, None
    masks = [
        cv2.imread(str(mask_path(masks_dir, path)), cv2.IMREAD_GRAYSCALE) for path, _ in picked
    ]
    masks = np.stack([cv2.resize(m, (image_size, image_size), interpolation=cv2.INTER_NEAREST)
                      for m in masks]) > 0  # fmt: skip
    return images.astype(np.float32), labels, masks
