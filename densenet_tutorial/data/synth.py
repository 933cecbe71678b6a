"""A generated, learnable stand-in for Cats vs Dogs, for tests, quick runs and offline demos.

Both classes are JPEG photos of about 500x375 pixels (sizes vary by up to 20 %): a noisy
background, and an animal drawn on it. Only the animal tells the classes apart:

- the background's colour and texture are drawn the same way for both classes;
- a "cat" is a warm (orange-brown) body of round shapes (ellipses);
- a "dog" is a cool (blue-grey) body of angular shapes (rotated rectangles).

So a network that is right has to look at the animal, and ``masks=FOLDER`` writes each
animal's mask (a PNG, white on black) so that heatmaps can be scored against it. A small
network separates the classes after an epoch or two, which is what a test of the training
loop needs. The files are written in any layout of ``LAYOUTS`` (the layouts of the Kaggle
handles), and ``broken=True`` adds the kinds of files found in the real downloads:
zero-byte, truncated, non-image, ``Thumbs.db``, corrupt data, and the valid but unusual
grayscale, CMYK and PNG-inside-``.jpg`` images. ``copies=True`` adds copies of a few photos,
as the real downloads hold them (``plan_copies``): the same file under another name, in
another folder and in the other class, and the same photo resized, recompressed, cropped or
mirrored.
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
COPY_KINDS = ("copy", "resized", "recompressed", "cropped", "mirrored")
"""How ``copies=True`` makes a copy: the same bytes; half the width and height; JPEG quality
60 instead of 90; 5 % of the width and of the height cut away (half on each side); mirrored
left to right."""


def draw_animal(label, rng, size=IMAGE_SIZE):
    """One synthetic photo (BGR uint8) of a ``"cat"`` or a ``"dog"``, and the animal's mask."""
    width, height = (max(8, round(side * rng.uniform(0.8, 1.2))) for side in size)
    background = rng.uniform(40, 210) + rng.normal(0, 20, 3)  # greyish, whatever the label
    blotches = background + rng.normal(0, 25, (height // 8 + 1, width // 8 + 1, 3))
    image = cv2.resize(np.clip(blotches, 0, 255).astype(np.uint8), (width, height))
    mask = np.zeros((height, width), np.uint8)
    colour = np.array(COLOURS[label]) + rng.normal(0, 15, 3)
    centre = rng.uniform(0.3, 0.7, 2) * (width, height)  # the animal, away from the borders
    for _ in range(rng.integers(2, 4)):
        part = tuple(int(c) for c in centre + rng.normal(0, 0.08, 2) * (width, height))
        axes = (int(rng.integers(width // 7 + 1, width // 4 + 2)),) * 2
        shade = tuple(float(c) for c in np.clip(colour * rng.uniform(0.8, 1.2), 0, 255))
        if label == "cat":  # a round part: an ellipse
            sides = (2 * axes[0], int(2 * axes[1] * rng.uniform(0.6, 1.0)))
            outline = cv2.ellipse2Poly(part, (sides[0] // 2, sides[1] // 2),
                                       int(rng.uniform(0, 180)), 0, 360, 10)  # fmt: skip
        else:  # an angular part: a rotated rectangle
            outline = cv2.boxPoints((part, (2 * axes[0], axes[1]), float(rng.uniform(0, 90))))
        for canvas, fill in ((image, shade), (mask, 255)):
            cv2.fillPoly(canvas, [outline.astype(np.int32)], fill)
    return image, mask


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


def make_copy(kind, image, mask, original):
    """``(bytes, mask)`` of a ``kind`` copy (``COPY_KINDS``) of ``image``, saved as ``original``."""
    height, width = image.shape[:2]
    if kind == "copy":
        return original, mask
    if kind == "recompressed":
        return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 60])[1].tobytes(), mask
    if kind == "resized":
        half = (max(1, width // 2), max(1, height // 2))
        image = cv2.resize(image, half, interpolation=cv2.INTER_AREA)
        mask = cv2.resize(mask, half, interpolation=cv2.INTER_NEAREST)
    elif kind == "cropped":
        dy, dx = round(height * 0.025), round(width * 0.025)
        image, mask = (m[dy : height - dy, dx : width - dx] for m in (image, mask))
    elif kind == "mirrored":
        image, mask = image[:, ::-1], mask[:, ::-1]
    return encode(np.ascontiguousarray(image)), np.ascontiguousarray(mask)


def mask_path(masks, path):
    """Where ``synthesize(..., masks=masks)`` keeps the mask of the image at ``path``."""
    return Path(masks) / PurePosixPath(path).with_suffix(".png")


def write_mask(masks, path, mask):
    target = mask_path(masks, path)
    target.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(target), mask)


def file_path(layout, label, n, part="train"):
    """The relative path of image ``n`` of class ``label`` in ``layout`` (see ``LAYOUTS``)."""
    template = LAYOUTS[layout].split(":")[-1]
    return template.format(part=part, label=label, Label=label.capitalize(), n=n)


def plan_files(layout, per_class, broken):
    """``{relative_path: (label, kind)}`` of every file to write.

    The images are where ``original_path`` puts them; the broken and unusual files get the
    next numbers of each class.
    """
    plan = {}
    for label in CLASS_NAMES:
        for n in range(per_class):
            plan[original_path(layout, label, n)] = (label, "jpeg")
        if broken:
            for i, kind in enumerate(BROKEN_KINDS + UNUSUAL_KINDS):
                path = file_path(layout, label, per_class + i)
                if kind == "thumbs-db":
                    path = str(PurePosixPath(path).with_name("Thumbs.db"))
                plan[path] = (label, kind)
    return plan


def original_path(layout, label, n):
    """Where ``plan_files`` puts image ``n`` of class ``label``: one in five goes to ``test/``
    in the class-folders layout, as on Kaggle."""
    part = "test" if layout == "class-folders" and n % 5 == 4 else "train"
    return file_path(layout, label, n, part)


def plan_copies(layout, per_class):
    """``{copy_path: (label, kind, original_path)}`` of the copies ``copies=True`` adds.

    For each class: the first photo copied byte for byte under another name in its folder,
    in another folder (the ``class-folders`` layout only: ``test/`` for ``train/``) and into
    the other class; the second resized and mirrored (a group of three); the third
    recompressed; the fourth cropped. The copies take numbers from ``per_class + 20``.
    """
    plan = {}
    for label, other in (CLASS_NAMES, CLASS_NAMES[::-1]):
        wanted = [
            (0, "copy", label, "same"),
            (0, "copy", label, "other folder"),
            (0, "copy", other, "same"),
            (1, "resized", label, "same"),
            (1, "mirrored", label, "same"),
            (2, "recompressed", label, "same"),
            (3, "cropped", label, "same"),
        ]
        number = per_class + (20 if label == CLASS_NAMES[0] else 40)
        for n, kind, as_label, where in wanted:
            if n >= per_class or (where == "other folder" and layout != "class-folders"):
                continue
            part = "test" if where == "other folder" else "train"
            plan[file_path(layout, as_label, number, part)] = (
                as_label, kind, original_path(layout, label, n)
            )  # fmt: skip
            number += 1
    return plan


def synthesize(out, per_class, layout="class-folders", broken=False, seed=0, size=IMAGE_SIZE,
               progress=False, masks=None, copies=False):  # fmt: skip
    """Write ``per_class`` generated images of each class to ``out`` in ``layout``.

    Returns ``{relative_path: kind}`` of every file written, where ``kind`` is ``"jpeg"``
    for a plain image or one of ``BROKEN_KINDS`` / ``UNUSUAL_KINDS`` / ``COPY_KINDS`` (with
    ``copies=True``; ``plan_copies`` says of which photo each is a copy). With the
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
    copied = plan_copies(layout, per_class) if copies else {}
    originals = {original for _, _, original in copied.values()}
    drawn = {}
    with contextlib.ExitStack() as stack:
        if layout == "competition":
            archive = stack.enter_context(zipfile.ZipFile(out / "train.zip", "w"))
            (out / "sampleSubmission.csv").write_text("id,label\n1,0\n")

        def write(path, data, mask):
            if masks is not None and mask is not None:
                write_mask(Path(masks), path, mask)
            if layout == "competition":
                archive.writestr(path, data)
            else:
                (out / path).parent.mkdir(parents=True, exist_ok=True)
                (out / path).write_bytes(data)

        for path, (label, kind) in tqdm(plan.items(), "Generating images", disable=not progress):
            image, mask = draw_animal(label, rng, size)
            data = encode(image, kind)
            if path in originals:
                drawn[path] = (image, mask, data)
            write(path, data, mask if kind == "jpeg" else None)
        for path, (_, kind, original) in copied.items():
            write(path, *make_copy(kind, *drawn[original]))
    if layout == "train-train":  # the handle's unlabelled test images
        (out / "test" / "test").mkdir(parents=True, exist_ok=True)
        (out / "test" / "test" / "1.jpg").write_bytes(encode(draw_animal("cat", rng, size)[0]))
    return {path: kind for path, (_, kind, *_) in {**plan, **copied}.items()}
