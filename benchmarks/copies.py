"""How well and how fast copies are found, on generated photos.

    python -m benchmarks.copies [--originals 1000] [--distinct 25000] [--files-per-class 12500]

- ``error_rates``: ``--originals`` generated photos are each copied in the ways of
  ``TRANSFORMS``; a copy that is not found is a *miss* (false negative). Among
  ``--distinct`` other generated photos, all distinct, every pair taken for copies is a
  *false pair* (false positive). Both for a grid of the two thresholds around the chosen
  ones (``copies.HASH_DISTANCE`` and ``copies.THUMBNAIL_RMS``). The features are computed as
  the check computes them (``verify.reduced_image`` and ``verify.image_features``).
- ``check_times``: ``prepare``'s check of ``2 * --files-per-class`` generated files
  (``synthesize(copies=True)``): the first check, finding the copies, and the check again
  after every file's modification time changed (what a new Colab runtime does when kagglehub
  extracts the same photos again).
"""

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

import cv2
import numpy as np

from densenet_tutorial.data import copies, find_images, synthesize
from densenet_tutorial.data.synth import draw_animal, encode, make_copy
from densenet_tutorial.data.verify import (
    check_images,
    image_features,
    keep_valid,
    photo_features,
    reduced_image,
)

HASH_DISTANCES = (8, 10, 12, 14, 16)
THUMBNAIL_RMS = (4.0, 5.0, 6.0, 7.0, 8.0)


def crop(image, top, left):
    """``image`` with 5 % of its height and width cut away: ``top`` and ``left`` are the
    shares (0 to 1) of each cut taken from the top and left sides."""
    height, width = image.shape[:2]
    dy, dx = round(height * 0.05), round(width * 0.05)
    y, x = round(dy * top), round(dx * left)
    return np.ascontiguousarray(image[y : height - dy + y, x : width - dx + x])


def synthesized(kind):
    """A copy made as ``synthesize(copies=True)`` makes the ``kind`` of ``COPY_KINDS``."""

    def make(image, data, rng):
        return make_copy(kind, image, np.zeros(image.shape[:2], np.uint8), data)[0]

    return make


TRANSFORMS = {
    "resized (half)": synthesized("resized"),
    "quality 60": synthesized("recompressed"),
    "crop 5 % mid": synthesized("cropped"),
    "crop 5 % any": lambda image, data, rng: encode(crop(image, *rng.uniform(0, 1, 2))),
    "crop 5 % corner": lambda image, data, rng: encode(crop(image, 1, 1)),
    "mirrored": synthesized("mirrored"),
}
"""How each copy is made (``synthesize(copies=True)`` makes the first three and the last)."""


def features(data):
    """``(hash, mirror hash, thumbnail)`` of an image file's bytes, as the check computes them."""
    return image_features(data, reduced_image(data))


def pair_measures(first, second):
    """``(hash distance, aligned thumbnail RMS)`` of each pair ``first[k]``, ``second[k]``."""
    distance = [
        min(bin(a[0] ^ b[0]).count("1"), bin(a[0] ^ b[1]).count("1"))
        for a, b in zip(first, second, strict=True)
    ]
    shape = (-1, copies.THUMBNAIL_SIDE, copies.THUMBNAIL_SIDE, 3)

    def thumbnails(side):
        return np.frombuffer(b"".join(f[2] for f in side), np.uint8).reshape(shape)

    rms = copies.aligned_rms(
        thumbnails(first).astype("float32"), thumbnails(second).astype("float32")
    )
    return np.array(distance), rms


def distinct_pairs(photos):
    """``(hash distance, aligned RMS)`` of the pairs of ``photos`` (features) that pass the
    widest thresholds of the grid (the hash, then the thumbnails before alignment)."""
    hashes = np.array([p[0] for p in photos], np.uint64)
    mirrors = np.array([p[1] for p in photos], np.uint64)
    i, j, distance = copies.hash_candidates(hashes, mirrors, max(HASH_DISTANCES))
    small = np.frombuffer(b"".join(p[2] for p in photos), np.uint8).astype(np.float32)
    small = small.reshape(len(photos), copies.THUMBNAIL_SIDE, copies.THUMBNAIL_SIDE, 3)
    kept_distance, kept_rms = [], []
    for start in range(0, len(i), 4096):
        a, b, d = (x[start : start + 4096] for x in (i, j, distance))
        plain = np.minimum(
            np.sqrt(((small[a] - small[b]) ** 2).mean(axis=(1, 2, 3))),
            np.sqrt(((small[a] - small[b][:, :, ::-1]) ** 2).mean(axis=(1, 2, 3))),
        )
        close = plain <= copies.PREFILTER_RMS
        kept_distance.append(d[close])
        kept_rms.append(copies.aligned_rms(small[a[close]], small[b[close]]))
    return np.concatenate(kept_distance), np.concatenate(kept_rms)


def error_rates(originals=1000, distinct=25000, seed=0):
    """``{"found": {transform: {(T_h, T_t): share}}, "false_pairs": {(T_h, T_t): n},
    "distinct_pairs": n}`` on generated photos (see the module)."""
    rng = np.random.default_rng(seed)
    found = {}
    for name, transform in TRANSFORMS.items():
        first, second = [], []
        for n in range(originals):
            image, _ = draw_animal(("cat", "dog")[n % 2], rng)
            data = encode(image)
            first.append(features(data))
            second.append(features(transform(image, data, rng)))
        distance, rms = pair_measures(first, second)
        found[name] = {(h, t): float(np.mean((distance <= h) & (rms <= t)))
                       for h in HASH_DISTANCES for t in THUMBNAIL_RMS}  # fmt: skip
    photos = [features(encode(draw_animal(("cat", "dog")[n % 2], rng)[0])) for n in range(distinct)]
    distance, rms = distinct_pairs(photos)
    false_pairs = {(h, t): int(((distance <= h) & (rms <= t)).sum())
                   for h in HASH_DISTANCES for t in THUMBNAIL_RMS}  # fmt: skip
    return {"found": found, "false_pairs": false_pairs,
            "distinct_pairs": distinct * (distinct - 1) // 2}  # fmt: skip


def check_times(per_class=12500, workers=None, workdir=None):
    """Seconds of the first check, of finding the copies, and of the check again after every
    modification time changed, on ``2 * per_class`` generated files with copies."""
    with tempfile.TemporaryDirectory(dir=workdir) as folder:
        source, out = Path(folder) / "images", Path(folder) / "out"
        synthesize(source, per_class, copies=True, progress=True)
        root, files = find_images(source, out)
        start = time.perf_counter()
        verdicts = check_images(root, files, out, workers=workers)
        valid = keep_valid(files, verdicts, out)
        first = time.perf_counter() - start
        start = time.perf_counter()
        pairs = copies.record_copies(photo_features(valid, verdicts), out)
        finding = time.perf_counter() - start
        for path, _ in files:  # extracted again: the same bytes, a new modification time
            os.utime(root / path, ns=(time.time_ns(), time.time_ns() + 1))
        start = time.perf_counter()
        verdicts = check_images(root, files, out, workers=workers, progress=False)
        copies.record_copies(photo_features(keep_valid(files, verdicts, out), verdicts), out)
        recheck = time.perf_counter() - start
        return {"files": len(files), "first_check": first, "copies": finding,
                "recheck": recheck, "pairs": len(pairs)}  # fmt: skip


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--originals", type=int, default=1000)
    parser.add_argument("--distinct", type=int, default=25000)
    parser.add_argument("--files-per-class", type=int, default=12500)
    args = parser.parse_args()
    if args.originals and args.distinct:
        rates = error_rates(args.originals, args.distinct)
        chosen = (copies.HASH_DISTANCE, copies.THUMBNAIL_RMS)
        print(f"Copies found (of {args.originals:,} each) and false pairs among "
              f"{args.distinct:,} distinct generated photos ({rates['distinct_pairs']:,} pairs), "
              f"by hash distance / thumbnail RMS; chosen: {chosen[0]} / {chosen[1]}")  # fmt: skip
        names = list(rates["found"])
        print(f"{'hash/rms':<10}" + "".join(f"{name:>16}" for name in names)
              + f"{'false pairs':>14}")  # fmt: skip
        for key in rates["false_pairs"]:
            print(f"{key[0]:>4}/{key[1]:<5}" + "".join(f"{rates['found'][n][key]:>16.1%}"
                                                       for n in names)
                  + f"{rates['false_pairs'][key]:>14,}")  # fmt: skip
        found = ", ".join(f"{name} {shares[chosen]:.1%}" for name, shares in rates["found"].items())
        false = f"{rates['false_pairs'][chosen]:,} of {rates['distinct_pairs']:,}"
        print(f"At the chosen thresholds: found {found}; false pairs {false}")
    if args.files_per_class:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            times = check_times(args.files_per_class)
        print(f"{times['files']:,} generated files: first check {times['first_check']:.1f} s, "
              f"finding the copies {times['copies']:.1f} s ({times['pairs']} pairs), again "
              f"after new modification times {times['recheck']:.1f} s "
              f"({times['recheck'] / (times['first_check'] + times['copies']):.1%})")  # fmt: skip


if __name__ == "__main__":
    cv2.setNumThreads(1)
    main()
