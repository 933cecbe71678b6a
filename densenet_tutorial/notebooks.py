"""What the notebooks share: where each one leaves its products, and how later ones find them.

Notebook 01 leaves the checked, split images under ``data/``; notebook 03 leaves a training
run under ``runs/``; notebooks 03, 04 and 05 look for them there. Each notebook can still be
opened on its own: in quick mode a missing product is made on the spot (generated images,
a short training run: minutes on a CPU); in a real run the error names the notebook to run
first.
"""

import json
from pathlib import Path

from densenet_tutorial.config import NAMES, RUN_SETTINGS, run_config
from densenet_tutorial.data import prepare, read_split, synthesize
from densenet_tutorial.data.files import (
    DamagedFile,
    read_json,
    recover,
    set_aside,
    write_atomically,
)
from densenet_tutorial.errors import MissingInputError, SettingError
from densenet_tutorial.model import depth

QUICK_IMAGES_PER_CLASS = 250  # generated images of each class in quick mode
QUICK_HELD_OUT_PER_CLASS = 40  # of them for validation, and as many for test (16 % each)
QUICK_DOUBTFUL_PHOTOS = 8  # photos notebook 01 shows the stand-in ImageNet network in quick mode
QUICK_DOUBTFUL_SIZE = 32  # at this side in pixels (DenseNet-169 takes 29 at least)
PREPARING = (
    "No split of the Cats-vs-Dogs photos on this runtime yet: preparing it now, as notebook "
    "01 does. kagglehub has Colab mount the 25,000 photos (or downloads them: minutes, "
    "depending on the network), then every file is checked once: 34 s for 25,000 generated "
    "500x375 JPEGs on a shared 2-vCPU CPU (measured), about as long on a 2-vCPU Colab runtime "
    "(an estimate). Files checked in an earlier runtime are recognised by their content and "
    "not decoded again."
)


def data_folder(data_dir, quick, photos=None):
    """``data/cats-vs-dogs`` for the Kaggle images, ``data/synthetic`` for generated ones,
    ``data/photos-NAME`` for the folder of photos ``photos`` (``.../NAME``)."""
    if photos:
        return Path(data_dir) / f"photos-{Path(photos).expanduser().resolve().name}"
    return Path(data_dir) / ("synthetic" if quick else "cats-vs-dogs")


def prepare_images(data_dir="data", quick=False, photos=None):
    """Notebook 01: get, check and split the images; return the folder that holds ``splits/``.

    ``photos``: a folder of labelled photos of your own (any layout ``prepare`` knows, such as
    the competition's ``cat.1.jpg``, ``dog.1.jpg``), checked and split instead, in quick mode
    too. Else quick mode generates a small learnable stand-in, broken files and copies
    included (so the check has something to reject and to find), and the animals' masks in
    ``masks/`` (so that heatmaps can be scored), instead of downloading 25,000 photos from
    Kaggle.
    """
    out = data_folder(data_dir, quick, photos)
    if photos:
        if not Path(photos).expanduser().is_dir():
            raise MissingInputError(f"PHOTOS = {str(photos)!r}: no such folder on this machine.")
        prepare(source=Path(photos).expanduser(), out=out)
        return out
    if not quick:
        prepare(out=out)
        return out
    synthesize(out / "images", QUICK_IMAGES_PER_CLASS, broken=True, masks=out / "masks",
               copies=True)  # fmt: skip
    held_out = QUICK_HELD_OUT_PER_CLASS
    prepare(source=out / "images", out=out, val_per_class=held_out, test_per_class=held_out)
    return out


def find_images(data_dir="data", quick=False, photos=None):
    """The folder notebook 01 prepared (from ``photos``, if given), or prepared now if this
    runtime lacks it.

    A split's manifests may have survived a new runtime (on Google Drive) while its images,
    in kagglehub's cache on the runtime's disk, did not: then the images are fetched and
    checked again, which gives the same split (it depends only on the seed and the paths).
    """
    out = data_folder(data_dir, quick, photos)
    if split_is_usable(out / "splits"):
        return out
    if not quick and not photos:
        print(PREPARING)
    return prepare_images(data_dir, quick=quick, photos=photos)


def split_is_usable(split_dir):
    """True if ``split_dir`` holds a finished split whose images are on this disk."""
    if not (split_dir / "meta.json").exists():
        return False
    root, rows = read_split(split_dir, "train")
    return bool(rows) and (root / rows[0][0]).exists()


DEFAULT_DATA = ("cats-vs-dogs", "synthetic")  # the folders ``data_folder`` names


def trained_settings(runs_dir, quick, **given):
    """Notebooks 04-06: the ``RunConfig`` of the settings ``given`` (not None), else those of
    03's last run.

    So a learner who changes k (or the batch, or an option such as ``augment=False``) in
    notebook 03 and runs it finds the new model in 04 and 05 without editing them; an
    explicit value still wins.
    """
    record = recover(last_run_file(runs_dir, quick))
    try:
        last = read_json(record) if record.exists() else {}
    except DamagedFile as damage:  # rebuilt when notebook 03 trains next
        aside = set_aside(record.parent, [record])
        print(f"{damage}: it is kept in {aside}; until notebook 03 records its run again, the "
              f"settings given here or the recipe's are used.")  # fmt: skip
        last = {}
    last = {name: value for name, value in last.items() if name in NAMES and name != "quick"}
    chosen = {name: value for name, value in given.items() if value is not None}
    return run_config(quick, **{**last, **chosen})


def last_run_file(runs_dir, quick):
    """Where notebook 03 records the settings of the run it trained last."""
    return Path(runs_dir) / ("last-run-quick.json" if quick else "last-run.json")


def remember_run(runs_dir, config):
    """Record ``config`` as notebook 03's last run (read by ``trained_settings``).

    Notebook 03 calls it once the run is trained, not when its settings are chosen: trying
    another batch in the settings cell leaves notebooks 04-06 on the model that exists.
    """
    text = json.dumps(config.to_dict(), indent=2) + "\n"
    write_atomically(last_run_file(runs_dir, config.quick), text)


def run_folder(runs_dir, config, data=None):
    """The folder of the run ``config``, named after every setting that sets it apart.

    ``train`` refuses a folder that holds a run of other settings (``check_run_folder``), so
    the name holds them all: the network and the budget (``densenet169-k32-224px-b32-40ep``),
    then a word for each setting that differs from its default (``-no-augment``, ``-seed1``,
    ``-lr0.01``, ``-imagenet`` ...), the data when it is not the split notebook 01 prepares
    (``data``: the folder holding ``splits/``), and ``-quick``. So a smaller ``BATCH_SIZE``
    after running out of memory, ``augment=False`` or another fine-tuning rate each start a
    run of their own, beside the others.
    """
    words = [f"densenet{depth(config.blocks)}", f"k{config.growth_rate}",
             f"{config.image_size}px", f"b{config.batch_size}", f"{config.epochs}ep"]  # fmt: skip
    words += [option_word(name, value) for name, value in config.options().items()]
    if data is not None:
        folder = Path(data)
        folder = folder.parent if folder.name == "splits" else folder
        if folder.name not in DEFAULT_DATA:
            words.append(f"data-{folder.name}")
    if config.quick:
        words.append("quick")
    return Path(runs_dir) / "-".join(words)


def option_word(name, value):
    """A run folder's word for a setting: ``no-augment``, ``seed1``, ``lr0.1`` ..."""
    if isinstance(value, bool):
        return name.replace("_", "-") if value else "no-" + name.replace("_", "-")
    if name == "pretrained":
        return "imagenet" if value == "imagenet" else "pretrained-" + Path(value).name.split(".")[0]
    short = {"learning_rate": "lr", "compression": "theta", "precision": ""}
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return short.get(name, name.replace("_", "-")) + text


def find_model(run, data_dir, config, photos=None):
    """``run/best.keras``; trained now in quick mode if missing (on ``photos``, if given),
    else an error naming 03.

    ``config`` is the ``RunConfig`` notebook 03 used, so that both find the same run folder.
    """
    best = Path(run) / "best.keras"
    if best.exists():
        return best
    if not config.quick:
        given = ", ".join(f"{name.upper()} = {getattr(config, name)!r}" for name in RUN_SETTINGS)
        options = ", ".join(f"{name}={value!r}" for name, value in config.options().items())
        if options:
            given += f" and run_config(..., {options})"
        raise MissingInputError(
            f"No trained model in {run}: run notebooks/03_train.ipynb first with {given} "
            f"(about 40 epochs on a GPU), or set QUICK = True here."
        )
    from densenet_tutorial.training import train

    train(find_images(data_dir, quick=True, photos=photos), run, config, verbose=0)
    return best


SHIPPED_PHOTO = "chelsea.png"  # images/chelsea.png: scikit-image's "Chelsea the cat", CC0
UPLOAD = "upload"


def photo_path(photo=None):
    """The photo a notebook explains.

    ``photo``: a path (a relative one is also looked up in the project's checkout and its
    ``images/``, so the default ``"chelsea.png"``, the shipped cat, works from any folder);
    ``"upload"``
    to upload one on Colab (``google.colab.files.upload``; the first file; none uploaded:
    the shipped cat); ``None``: an upload on Colab, else the shipped cat.
    """
    from densenet_tutorial import colab

    if photo == UPLOAD and not colab.on_colab():
        raise SettingError(
            f'PHOTO = "{UPLOAD}" asks for a file in Colab; on this machine give the path of '
            f"your photo instead."
        )
    if photo == UPLOAD or (photo is None and colab.on_colab()):
        return uploaded_photo() or in_checkout(Path(SHIPPED_PHOTO))
    return in_checkout(Path(photo or SHIPPED_PHOTO))


def in_checkout(path):
    """``path``; if it is relative and missing here, the same path in the project's checkout
    (or in its ``images/``)."""
    from densenet_tutorial.project import package_checkout, products_dir

    if path.is_absolute() or path.exists():
        return path
    for root in (package_checkout(), products_dir()):
        for found in (root / path, root / "images" / path) if root else ():
            if found.exists():
                return found
    return path


def uploaded_photo():
    """The first file uploaded in Colab's dialog, saved under the products folder; else None."""
    from google.colab import files

    from densenet_tutorial.project import products_dir

    uploaded = files.upload()
    if not uploaded:
        print("No file uploaded: explaining the shipped cat instead.")
        return None
    name, data = next(iter(uploaded.items()))
    path = products_dir() / "uploads" / Path(name).name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def training_subset(images_dir, fraction, seed=0):
    """A split with ``fraction`` of the training images and the same validation and test ones.

    ``images_dir`` holds the split notebook 01 wrote (``splits/``); the subset is written
    beside it, in ``NAME-PCTpct/splits/``, and that folder is returned: give it to ``train``
    (and ``run_folder(..., data=...)``). Each class keeps the same share (at least one image),
    chosen by the split's own hash of ``seed`` and path (``split.split_key``), so the same
    call gives the same subset; the photos are not copied.
    """
    import math

    from densenet_tutorial.data.files import write_csv
    from densenet_tutorial.data.split import PARTS, split_key

    if not 0 < fraction <= 1:
        raise SettingError(f"fraction={fraction!r} is not allowed: a share in (0, 1].")
    source, images_dir = Path(images_dir) / "splits", Path(images_dir)
    read_split(source, "train")  # a damaged meta.json: set aside, one line saying what to do
    meta = read_json(source / "meta.json")
    out = images_dir.with_name(f"{images_dir.name}-{round(100 * fraction)}pct") / "splits"
    for part in PARTS:
        _, rows = read_split(source, part)
        if part == "train":
            kept = []
            for label in sorted({label for _, label in rows}):
                paths = sorted(
                    (p for p, lab in rows if lab == label), key=lambda p: split_key(p, seed)
                )
                kept += [(p, label) for p in paths[: max(1, math.ceil(fraction * len(paths)))]]
            rows = sorted(kept)
        write_csv(out / f"{part}.csv", ("path", "label"), rows)
        counts = {
            label: sum(lab == label for _, lab in rows)
            for label in sorted({lab for _, lab in rows})
        }
        meta["counts"][part] = {"total": len(rows), **counts}
    meta.update(subset_of=str(images_dir.resolve()), training_fraction=fraction)
    write_atomically(out / "meta.json", json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return out.parent


def show_tensorboard(logdir, height=600):
    """TensorBoard inside the notebook, reading ``logdir`` (and the folders in it) live.

    ``%load_ext tensorboard`` and ``%tensorboard --logdir LOGDIR`` do the same by starting
    TensorBoard as a program of its own, which keeps running after the notebook; here the
    server runs in a thread of this kernel (``tensorboard.program``), on a port the system
    picks, and stops with the kernel. ``tensorboard.notebook.display`` shows it (on Colab
    through Colab's proxy). Returns the server's address.
    """
    from tensorboard import notebook, program

    Path(logdir).mkdir(parents=True, exist_ok=True)
    server = program.TensorBoard()
    server.configure(argv=[None, "--logdir", str(logdir), "--port", "0", "--load_fast", "false"])
    url = server.launch()
    notebook.display(port=int(url.rstrip("/").rsplit(":", 1)[1]), height=height)
    return url


def imagenet_agreement(ours, reference, pixels):
    """Our 1,000-class DenseNet-169 (logits, raw pixels in) beside keras.applications' (softmax,
    ``preprocess_input`` first) on the same photo(s) ``pixels``, (N, 224, 224, 3) in [0, 255].

    Returns both top-5 class indices of the first photo and the largest difference of the
    probabilities: the same weights and the same operations give the same numbers.
    """
    import keras
    import numpy as np

    ours_p = keras.ops.convert_to_numpy(keras.ops.softmax(ours.predict(pixels, verbose=0)))
    theirs = reference.predict(
        keras.applications.densenet.preprocess_input(np.array(pixels, dtype="float32")),
        verbose=0,
    )
    top5 = {name: np.argsort(p[0])[::-1][:5].tolist() for name, p in
            (("ours", ours_p), ("keras.applications", theirs))}  # fmt: skip
    return {
        "top5": top5,
        "probabilities": ours_p,
        "largest_difference": float(np.abs(ours_p - theirs).max()),
    }


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
