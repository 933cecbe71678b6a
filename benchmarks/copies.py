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


def measures(photos, max_distance):
    """``{(i, j): (hash distance, aligned RMS)}`` of the pairs of ``photos`` (features) that
    pass the brightness window, the widest hash threshold and the prefilter, measured as
    ``copies.near_pairs`` measures them."""
    i, j, distance, rms = copies.candidate_measures(
        [p[0] for p in photos], [p[1] for p in photos], [p[2] for p in photos], max_distance
    )
    return dict(zip(zip(i.tolist(), j.tolist(), strict=True),
                    zip(distance.tolist(), rms.tolist(), strict=True), strict=True))  # fmt: skip


def error_rates(originals=1000, distinct=25000, seed=0):
    """``{"found": {transform: {(T_h, T_t): share}}, "false_pairs": {(T_h, T_t): n},
    "distinct_pairs": n}`` on generated photos (see the module)."""
    rng = np.random.default_rng(seed)
    found, widest = {}, max(HASH_DISTANCES)
    for name, transform in TRANSFORMS.items():
        first, second = [], []
        for n in range(originals):
            image, _ = draw_animal(("cat", "dog")[n % 2], rng)
            data = encode(image)
            first.append(features(data))
            second.append(features(transform(image, data, rng)))
        measured = measures(first + second, widest)
        pairs = [measured.get((n, originals + n), (np.inf, np.inf)) for n in range(originals)]
        found[name] = {(h, t): float(np.mean([d <= h and r <= t for d, r in pairs]))
                       for h in HASH_DISTANCES for t in THUMBNAIL_RMS}  # fmt: skip
    photos = [features(encode(draw_animal(("cat", "dog")[n % 2], rng)[0])) for n in range(distinct)]
    measured = np.array(list(measures(photos, widest).values())).reshape(-1, 2)
    distance, rms = measured[:, 0], measured[:, 1]
    false_pairs = {(h, t): int(((distance <= h) & (rms <= t)).sum())
                   for h in HASH_DISTANCES for t in THUMBNAIL_RMS}  # fmt: skip
    hash_alone = len(copies.hash_candidates([p[0] for p in photos], [p[1] for p in photos])[0])
    return {"found": found, "false_pairs": false_pairs, "hash_alone": hash_alone,
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
        print(f"The hash alone (at most {copies.HASH_DISTANCE} bits apart, either mirrored) "
              f"would take {rates['hash_alone']:,} distinct pairs for copies.")  # fmt: skip
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
