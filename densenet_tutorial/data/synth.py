"""A generated, learnable stand-in for Cats vs Dogs, for tests, quick runs and offline demos.

Both classes are JPEG photos of about 500x375 pixels (sizes vary by up to 20 %) with a
noisy background and a few shapes, so that the two differ visibly:

- a "cat" is warm (orange-brown) with round shapes (ellipses);
- a "dog" is cool (blue-grey) with angular shapes (rotated rectangles).

Shapes are darker or lighter shades of the background's colour, so both the colours of a
whole image and its shapes tell the classes apart: a small network separates them after an
epoch or two, which is what a test of the training loop needs. The files are written in
any layout of ``LAYOUTS`` (the layouts of the Kaggle handles), and ``broken=True`` adds
the kinds of files found in the real downloads: zero-byte, truncated, non-image,
``Thumbs.db``, corrupt data, and the valid but unusual grayscale, CMYK and
PNG-inside-``.jpg`` images.
"""

import contextlib
import io
import zipfile
from pathlib import Path, PurePosixPath

import cv2
import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from densenet_tutorial.data.layouts import CLASS_NAMES, LAYOUTS
from densenet_tutorial.errors import SettingError

COLOURS = {"cat": (40, 110, 200), "dog": (170, 120, 60)}  # mean BGR: orange-brown, blue-grey
IMAGE_SIZE = (500, 375)  # width, height: the typical Kaggle Cats-vs-Dogs photo
BROKEN_KINDS = ("empty", "truncated", "not-an-image", "thumbs-db", "corrupt-data")
UNUSUAL_KINDS = ("grayscale", "cmyk", "png-inside-jpg")


def draw_animal(label, rng, size=IMAGE_SIZE):
    """One synthetic photo (BGR uint8) of a ``"cat"`` or a ``"dog"``."""
    width, height = (max(8, round(side * rng.uniform(0.8, 1.2))) for side in size)
    colour = np.array(COLOURS[label]) + rng.normal(0, 20, 3)
    blotches = colour + rng.normal(0, 25, (height // 8 + 1, width // 8 + 1, 3))
    image = cv2.resize(np.clip(blotches, 0, 255).astype(np.uint8), (width, height))
    for _ in range(rng.integers(2, 5)):
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        axes = (int(rng.integers(width // 10 + 1, width // 3 + 2)),) * 2
        shade = tuple(float(c) for c in np.clip(colour * rng.uniform(0.4, 1.6), 0, 255))
        if label == "cat":
            axes = (axes[0], int(axes[1] * rng.uniform(0.6, 1.0)))
            cv2.ellipse(image, centre, axes, float(rng.uniform(0, 180)), 0, 360, shade, -1)
        else:
            box = cv2.boxPoints((centre, (2 * axes[0], axes[1]), float(rng.uniform(0, 90))))
            cv2.fillPoly(image, [box.astype(np.int32)], shade)
    return image


def encode(image, kind="jpeg"):
    """The bytes of a file of the given kind holding ``image`` (or failing to)."""
    jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
    if kind == "jpeg":
        return jpeg
    if kind == "empty":
        return b""
    if kind == "truncated":
        return jpeg[: len(jpeg) // 2]
    if kind == "not-an-image":
        return b"<html><body>404 Not Found</body></html>\n"
    if kind == "thumbs-db":
        return bytes.fromhex("d0cf11e0a1b11ae1") + bytes(504)  # an OLE2 file, like Windows'
    if kind == "corrupt-data":
        return jpeg[:-2] + bytes(40) + jpeg[-2:]  # libjpeg: "40 extraneous bytes before marker"
    if kind == "png-inside-jpg":
        return cv2.imencode(".png", image)[1].tobytes()
    buffer = io.BytesIO()
    rgb = Image.fromarray(image[:, :, ::-1])
    (rgb.convert("L") if kind == "grayscale" else rgb.convert("CMYK")).save(buffer, "JPEG")
    return buffer.getvalue()


def file_path(layout, label, n, part="train"):
    """The relative path of image ``n`` of class ``label`` in ``layout`` (see ``LAYOUTS``)."""
    template = LAYOUTS[layout].split(":")[-1]
    return template.format(part=part, label=label, Label=label.capitalize(), n=n)


def plan_files(layout, per_class, broken):
    """``{relative_path: (label, kind)}`` of every file to write.

    One in five images goes to ``test/`` in the class-folders layout (as on Kaggle); the
    broken and unusual files get the next numbers of each class.
    """
    plan = {}
    for label in CLASS_NAMES:
        for n in range(per_class):
            part = "test" if layout == "class-folders" and n % 5 == 4 else "train"
            plan[file_path(layout, label, n, part)] = (label, "jpeg")
        if broken:
            for i, kind in enumerate(BROKEN_KINDS + UNUSUAL_KINDS):
                path = file_path(layout, label, per_class + i)
                if kind == "thumbs-db":
                    path = str(PurePosixPath(path).with_name("Thumbs.db"))
                plan[path] = (label, kind)
    return plan


def synthesize(out, per_class, layout="class-folders", broken=False, seed=0, size=IMAGE_SIZE,
               progress=False):  # fmt: skip
    """Write ``per_class`` generated images of each class to ``out`` in ``layout``.

    Returns ``{relative_path: kind}`` of every file written, where ``kind`` is ``"jpeg"``
    for a plain image or one of ``BROKEN_KINDS`` / ``UNUSUAL_KINDS``. With the
    ``"competition"`` layout the files are inside ``out/train.zip``. ``Thumbs.db`` is
    written next to the images; only in layouts with class folders does it carry a label
    (and so get checked and rejected), elsewhere it is just not part of the data set.
    """
    if layout not in LAYOUTS:
        raise SettingError(f"Unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}.")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    plan = plan_files(layout, per_class, broken)
    with contextlib.ExitStack() as stack:
        if layout == "competition":
            archive = stack.enter_context(zipfile.ZipFile(out / "train.zip", "w"))
            (out / "sampleSubmission.csv").write_text("id,label\n1,0\n")
        for path, (label, kind) in tqdm(plan.items(), "Generating images", disable=not progress):
            data = encode(draw_animal(label, rng, size), kind)
            if layout == "competition":
                archive.writestr(path, data)
            else:
                (out / path).parent.mkdir(parents=True, exist_ok=True)
                (out / path).write_bytes(data)
    if layout == "train-train":  # the handle's unlabelled test images
        (out / "test" / "test").mkdir(parents=True, exist_ok=True)
        (out / "test" / "test" / "1.jpg").write_bytes(encode(draw_animal("cat", rng, size)))
    return {path: kind for path, (_, kind) in plan.items()}
