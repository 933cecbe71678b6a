"""Step 3b: find the copies among the checked photos, so that the split can keep them together.

The Kaggle photos come from shelter listings, where the same file recurs under another name
and the same photo recurs resized, recompressed, slightly cropped or mirrored. A test photo
whose copy is in the training part makes test accuracy too good, so ``split`` keeps every
group of copies in one part. Two kinds of copies are found, from what the check computes
anyway (``verify.inspect_file``):

- **exact copies**: the same bytes, found by their SHA-256;
- **near copies**: the same picture, found in two steps. First the *perceptual hash*
  (``perceptual_hash``: the signs of the 8x8 lowest frequencies of the discrete cosine
  transform of a 32x32 grey thumbnail, compared with their median: the "pHash" of Zauner,
  *Implementation and Benchmarking of Perceptual Image Hash Functions*, 2010, as the
  ``imagehash`` library's ``phash`` computes it, up to its resampling filter and the DCT's
  scale) must differ in at most ``HASH_DISTANCE`` of its 64 bits, for the photos or one's
  mirror image. Then the 8x8 colour thumbnails must agree to within ``THUMBNAIL_RMS`` grey
  levels (root mean square), after the best of the small crops (up to 5 % of each side) and
  the mirror image that could turn one into the other.

The hash alone is not enough: it keeps only the layout of light and dark, and among 25,000
generated photos (a grey background and an animal near the centre) it finds hundreds of
thousands of distinct pairs within 12 bits; the thumbnail check, colours included, keeps
none of them (``benchmarks/copies.py`` measures both kinds of error). Only photos about as
bright are compared (``BRIGHTNESS_WINDOW``), hash against hash in blocks of NumPy bit
operations (about a second for 25,000 photos), and only the pairs the hash lets through
are compared further.
"""

import base64
import concurrent.futures
import functools
import hashlib
import itertools
import json
import os
from collections import Counter, defaultdict
from pathlib import Path, PurePosixPath

import cv2
import numpy as np

from densenet_tutorial.data.files import DamagedFile, read_json, rebuilding, write_atomically

HASH_SIDE = 32  # the grey thumbnail the DCT is taken of
HASH_FREQUENCIES = 8  # the 8x8 lowest frequencies: a 64-bit hash
THUMBNAIL_SIDE = 8  # the colour thumbnail compared after the hash: 8x8x3 bytes
THUMBNAIL_BYTES = THUMBNAIL_SIDE * THUMBNAIL_SIDE * 3
HASH_DISTANCE = 12
"""Bits of the 64 that may differ between near copies (either orientation); see the module."""
THUMBNAIL_RMS = 6.0
"""Largest root-mean-square difference of near copies' aligned 8x8 colour thumbnails (0-255).

Both thresholds, checked on all 25,000 of Kaggle's labelled photos (at 200x200): the 30 near
pairs found (34 groups of copies, 70 photos, each looked at: a true copy) differ by at most 4
bits and 2.8 levels; the closest pair left out, by 14.0 levels (and 16 bits): two photos of
one dog taken moments apart, not a copy. No pair within 20 bits lies between: the thresholds
sit in a wide gap, and moving them within it changes nothing found."""
PREFILTER_RMS = 12.0  # pairs whose thumbnails differ more than this before alignment are dropped
BRIGHTNESS_WINDOW = 30.0
"""Photos whose mean grey levels differ more than this are not compared: cutting up to 5 % off
each side removes at most 9.75 % of the pixels, which moves the mean by at most 27.5 levels
(0.0975 / 0.9025 x 255); resizing and recompressing move it by a level or two."""
GREY_WEIGHTS = np.array([0.114, 0.587, 0.299], np.float32)  # B, G, R: OpenCV's BGR2GRAY
CROP_FRACTIONS = (0.025, 0.05)  # the crops tried: 2.5 % and 5 % of a side, at 3 positions each

# The DCT of an image mirrored left to right is the same with column v multiplied by (-1)^v.
MIRROR_SIGNS = np.where(np.arange(HASH_FREQUENCIES) % 2, -1, 1).astype(np.float32)


def perceptual_hash(image):
    """``(hash, hash of the mirror image)`` of a BGR or grey image, as 64-bit integers."""
    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    small = cv2.resize(grey, (HASH_SIDE, HASH_SIDE), interpolation=cv2.INTER_AREA)
    low = cv2.dct(np.float32(small))[:HASH_FREQUENCIES, :HASH_FREQUENCIES]
    both = np.stack((low, low * MIRROR_SIGNS)).reshape(2, -1)
    ordered = np.sort(both, axis=1)  # the median of 64 numbers: the mean of the middle two
    half = both.shape[1] // 2
    medians = (ordered[:, half - 1 : half] + ordered[:, half : half + 1]) / 2
    bits = np.packbits(both > medians, axis=1)
    return tuple(int.from_bytes(row.tobytes(), "big") for row in bits)


def image_features(image):
    """``(hash, mirror hash, thumbnail)`` of a BGR or grey image: its ``perceptual_hash`` and
    its 8x8 colour (BGR) thumbnail as 192 bytes, both from one 32x32 colour thumbnail."""
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    small = cv2.resize(image, (HASH_SIDE, HASH_SIDE), interpolation=cv2.INTER_AREA)
    side = (THUMBNAIL_SIDE, THUMBNAIL_SIDE)
    thumbnail = cv2.resize(small, side, interpolation=cv2.INTER_AREA).tobytes()
    return (*perceptual_hash(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)), thumbnail)


def encode_features(features):
    """The text that ``checked.csv`` keeps of ``image_features``: two hex numbers, base64."""
    hash_, mirror, thumbnail = features
    return f"{hash_:016x}", f"{mirror:016x}", base64.b64encode(thumbnail).decode("ascii")


def decode_features(hash_text, mirror_text, thumbnail_text):
    """The inverse of ``encode_features``: ``(hash, mirror hash, thumbnail bytes)``."""
    return int(hash_text, 16), int(mirror_text, 16), base64.b64decode(thumbnail_text)


def popcount(values, out):
    """The number of set bits of each uint64 of ``values``, written to ``out`` (uint8)."""
    if hasattr(np, "bitwise_count"):  # NumPy 2
        return np.bitwise_count(values, out=out)
    bits = np.unpackbits(values.view(np.uint8).reshape(*values.shape, 8), axis=-1)
    return bits.sum(axis=-1, dtype=np.uint8, out=out)  # NumPy 1.x: slower, the same


def hash_candidates(hashes, mirrors, max_distance=HASH_DISTANCE, brightness=None,
                    window=np.inf, block=64, threads=None):  # fmt: skip
    """``(i, j, distance)`` arrays of every pair ``i < j`` whose hashes differ in at most
    ``max_distance`` bits: ``hashes[i]`` against ``hashes[j]``, and either photo's mirror
    image (``mirrors``) against the other.

    With ``brightness`` (a number per photo), only pairs at most ``window`` apart in it are
    compared: the photos are sorted by brightness, and each ``block`` of rows is compared with
    the columns within reach, by NumPy bit operations written into buffers allocated once
    (allocating fresh ones per block costs more than the operations). NumPy works outside
    Python's lock, so ``threads`` (one per CPU core) share the blocks.
    """
    n = len(hashes)
    level = np.zeros(n) if brightness is None else np.asarray(brightness, np.float64)
    order = np.argsort(level, kind="stable")
    level = level[order]
    hashes = np.asarray(hashes, np.uint64)[order]
    mirrors = np.asarray(mirrors, np.uint64)[order]
    threads = threads or os.cpu_count() or 1

    def scan(first_block):
        buffers = [np.empty(block * n, dtype) for dtype in (np.uint64, np.uint8, np.uint8, bool)]
        found = [(np.zeros(0, np.intp), np.zeros(0, np.intp), np.zeros(0, np.uint8))]
        for start in range(first_block * block, n, threads * block):  # every threads-th block
            stop = min(start + block, n)
            end = np.searchsorted(level, level[stop - 1] + window, side="right")
            shape = (stop - start, end - start)  # rows against the columns within reach
            xor, distance, mirrored, close = (b[: shape[0] * shape[1]].reshape(shape)
                                              for b in buffers)  # fmt: skip
            rows = hashes[start:stop, None]
            np.bitwise_xor(rows, hashes[None, start:end], out=xor)
            popcount(xor, out=distance)
            np.bitwise_xor(rows, mirrors[None, start:end], out=xor)
            np.minimum(distance, popcount(xor, out=mirrored), out=distance)
            np.bitwise_xor(mirrors[start:stop, None], hashes[None, start:end], out=xor)
            np.minimum(distance, popcount(xor, out=mirrored), out=distance)
            np.less_equal(distance, max_distance, out=close)
            i, j = np.divmod(np.flatnonzero(close), shape[1])  # faster than 2-D nonzero
            keep = (j > i) & (level[start + j] - level[start + i] <= window)  # each pair once
            i, j = i[keep], j[keep]
            found.append((start + i, start + j, distance[i, j]))
        return [np.concatenate(parts) for parts in zip(*found, strict=True)]

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        parts = list(pool.map(scan, range(threads)))
    i, j, distance = (np.concatenate(found) for found in zip(*parts, strict=True))
    i, j = np.minimum(order[i], order[j]), np.maximum(order[i], order[j])
    arranged = np.lexsort((j, i))  # the same order whatever the sorting and the threads
    return i[arranged], j[arranged], distance[arranged]


def crop_samplers(side=THUMBNAIL_SIDE):
    """``(n, side, side)`` matrices: each resamples one axis of a thumbnail as if the photo
    had been cropped by one of ``CROP_FRACTIONS`` at its start, its middle or its end (and
    the identity, no crop), by linear interpolation between the thumbnail's pixels."""
    crops = [(0.0, 0.0)] + [(c, at * c) for c in CROP_FRACTIONS for at in (0, 0.5, 1)]
    samplers = np.zeros((len(crops), side, side), np.float32)
    for n, (fraction, offset) in enumerate(crops):
        for k in range(side):  # pixel k of the crop lies at `source` in the original
            source = np.clip((offset + (k + 0.5) / side * (1 - fraction)) * side - 0.5, 0, side - 1)
            low = int(source)
            high = min(low + 1, side - 1)
            samplers[n, k, low] += 1 - (source - low)
            samplers[n, k, high] += source - low
    return samplers


@functools.cache
def crop_operator(side=THUMBNAIL_SIDE):
    """``(side * side * 3, crops * side * side * 3)``: a flattened thumbnail times this matrix
    gives all its crops (every pair of a row crop and a column crop of ``crop_samplers``)."""
    samplers = crop_samplers(side)
    n = len(samplers) ** 2
    operator = np.einsum("aik,bjl,cd->abijckld", samplers, samplers, np.eye(3, dtype=np.float32))
    return np.ascontiguousarray(operator.reshape(n * side * side * 3, side * side * 3).T)


def aligned_rms(first, second):
    """The smallest RMS difference between thumbnails ``first[k]`` and ``second[k]``
    (``(n, side, side, 3)`` float arrays) over the crops of ``crop_samplers`` of either one,
    and the mirror image of the other."""
    n, side = len(first), first.shape[1]
    size = side * side * 3
    best = np.full(n, np.inf, np.float32)
    for a, b in ((first, second), (second, first)):
        operator = crop_operator(side)
        crops = (a.reshape(n, size) @ operator).reshape(n, operator.shape[1] // size, size)
        norms = np.einsum("nhk,nhk->nh", crops, crops)
        for other in (b, b[:, :, ::-1]):
            target = other.reshape(n, size)
            dots = np.matmul(crops, target[:, :, None])[:, :, 0]
            squared = norms - 2 * dots + np.einsum("nk,nk->n", target, target)[:, None]
            best = np.minimum(best, np.sqrt(np.maximum(squared.min(axis=1), 0) / size))
    return best


def candidate_measures(hashes, mirrors, thumbnails, max_distance=HASH_DISTANCE, chunk=8192):
    """``(i, j, hash distance, aligned thumbnail RMS)`` arrays of the pairs ``i < j`` of photos
    (features ``hashes[i]``, ``mirrors[i]``, ``thumbnails[i]``, 192 bytes) that are about as
    bright, whose hashes differ in at most ``max_distance`` bits and whose thumbnails differ
    by at most ``PREFILTER_RMS`` before alignment."""
    shape = (len(thumbnails), THUMBNAIL_SIDE, THUMBNAIL_SIDE, 3)
    small = np.frombuffer(b"".join(thumbnails), np.uint8).reshape(shape).astype(np.float32)
    brightness = small.reshape(len(small), -1, 3).mean(axis=1) @ GREY_WEIGHTS
    i, j, distance = hash_candidates(hashes, mirrors, max_distance, brightness=brightness,
                                     window=BRIGHTNESS_WINDOW)  # fmt: skip
    flat, flat_mirrored = small.reshape(len(small), -1), small[:, :, ::-1].reshape(len(small), -1)
    close = np.zeros(len(i), bool)
    for start in range(0, len(i), chunk):  # first the thumbnails as they are: cheap
        a, b = i[start : start + chunk], j[start : start + chunk]
        squared = [np.einsum("ij,ij->i", diff, diff)
                   for diff in (flat[a] - flat[b], flat[a] - flat_mirrored[b])]  # fmt: skip
        close[start : start + chunk] = np.minimum(*squared) <= PREFILTER_RMS**2 * flat.shape[1]
    i, j, distance = i[close], j[close], distance[close]
    rms = np.concatenate([np.zeros(0, np.float32)] + [  # then aligned, for the few pairs left
        aligned_rms(small[i[start : start + 2048]], small[j[start : start + 2048]])
        for start in range(0, len(i), 2048)
    ])  # fmt: skip
    return i, j, distance, rms


def near_pairs(hashes, mirrors, thumbnails):
    """``[(i, j, hash distance, thumbnail RMS), ...]`` of the near copies among photos whose
    features are ``hashes[i]``, ``mirrors[i]`` and ``thumbnails[i]`` (192 bytes each)."""
    i, j, distance, rms = candidate_measures(hashes, mirrors, thumbnails)
    found = rms <= THUMBNAIL_RMS
    return list(zip(i[found].tolist(), j[found].tolist(), distance[found].tolist(),
                    rms[found].tolist(), strict=True))  # fmt: skip


def find_copies(photos):
    """The pairs of copies among ``photos``, ``[(path, label, sha256, features), ...]``.

    ``features`` is ``(hash, mirror hash, thumbnail)``. Returns dictionaries with ``a`` and
    ``b`` (paths, ``a < b``), their labels ``label_a`` and ``label_b``, ``kind``
    (``"exact"`` or ``"near"``), ``hamming`` (bits of the hash) and ``rms`` (of the aligned
    thumbnails), sorted. Files with the same bytes are paired each with each; near copies
    are looked for among the first paths of each content only.
    """
    labels = {path: label for path, label, _, _ in photos}
    by_content = defaultdict(list)
    for path, _, sha256, features in sorted(photos, key=lambda photo: photo[0]):
        by_content[sha256].append((path, features))
    found = []
    for same in by_content.values():
        found += [(a, b, "exact", 0, 0.0) for (a, _), (b, _) in itertools.combinations(same, 2)]
    firsts = sorted(same[0] for same in by_content.values())
    hashes, mirrors, thumbnails = zip(*(features for _, features in firsts), strict=True) if (
        firsts) else ((), (), ())  # fmt: skip
    for i, j, distance, rms in near_pairs(hashes, mirrors, thumbnails):
        found.append((firsts[i][0], firsts[j][0], "near", int(distance), round(float(rms), 2)))
    pairs = [{"a": a, "b": b, "label_a": labels[a], "label_b": labels[b], "kind": kind,
              "hamming": distance, "rms": rms}
             for a, b, kind, distance, rms in found]  # fmt: skip
    return sorted(pairs, key=lambda pair: (pair["a"], pair["b"]))


def record_copies(photos, out):
    """``find_copies`` of ``photos`` (``[(path, label, sha256, features), ...]``, the features
    as ``encode_features`` writes them), kept in ``OUT/copies.json``: a rerun on the same
    photos (the same paths, labels and contents) reads the pairs back instead."""
    settings = (HASH_DISTANCE, THUMBNAIL_RMS, PREFILTER_RMS, BRIGHTNESS_WINDOW, CROP_FRACTIONS)
    digest = hashlib.sha256(f"{__name__} {settings} symmetric hash distance".encode())
    for photo in sorted(photos):
        digest.update("\t".join((*photo[:3], *photo[3], "\n")).encode())
    record = Path(out) / "copies.json"
    if record.exists():
        try:
            saved = read_json(record, keys=("inputs", "pairs"))
            if not well_formed(saved["pairs"]):
                raise DamagedFile(record, "pairs that are not as written")
            if saved["inputs"] == digest.hexdigest():
                return saved["pairs"]
        except DamagedFile as damage:
            rebuilding(damage, record.parent)
    pairs = find_copies([(*photo[:3], decode_features(*photo[3])) for photo in photos])
    saved = {"inputs": digest.hexdigest(), "photos": len(photos), "hash_distance": HASH_DISTANCE,
             "thumbnail_rms": THUMBNAIL_RMS, "pairs": pairs}  # fmt: skip
    write_atomically(record, json.dumps(saved, indent=1) + "\n")
    return pairs


def well_formed(pairs):
    """Whether ``pairs`` read back from ``copies.json`` are what ``find_copies`` returns."""
    fields = {"a", "b", "label_a", "label_b", "kind", "hamming", "rms"}
    return isinstance(pairs, list) and all(
        isinstance(pair, dict) and set(pair) == fields and pair["kind"] in KINDS for pair in pairs
    )


def copy_groups(pairs):
    """The groups of copies that ``pairs`` link (directly or through other copies): a sorted
    list of sorted lists of two or more paths, the connected components of the graph whose
    edges are the pairs (SciPy's ``connected_components``)."""
    # Imported here: the file check's worker processes import this module and need no graph,
    # and importing scipy.sparse.csgraph took 1.2 s (measured, -X importtime, a busy 2-core VM).
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    paths = sorted({path for pair in pairs for path in (pair["a"], pair["b"])})
    index = {path: i for i, path in enumerate(paths)}
    edges = np.array([(index[pair["a"]], index[pair["b"]]) for pair in pairs], np.intp)
    graph = coo_matrix((np.ones(len(edges)), edges.reshape(-1, 2).T), (len(paths), len(paths)))
    _, component = connected_components(graph, directed=False)
    groups = defaultdict(list)
    for path, number in zip(paths, component, strict=True):
        groups[number].append(path)  # paths in sorted order, so each group is sorted
    return sorted(groups.values())


def relation(pair):
    """Where the two photos of a pair are: ``"other class"`` (labelled differently),
    ``"other folder"`` (the same label, another folder) or ``"same folder"``."""
    if pair["label_a"] != pair["label_b"]:
        return "other class"
    same = PurePosixPath(pair["a"]).parent == PurePosixPath(pair["b"]).parent
    return "same folder" if same else "other folder"


RELATIONS = ("same folder", "other folder", "other class")
KINDS = {"exact": "exact copies (the same bytes)",
         "near": "near copies (resized, recompressed, slightly cropped or mirrored)"}  # fmt: skip


def example_pairs(pairs, count=6):
    """Up to ``count`` pairs to look at: one of each kind and relation first, then the rest."""
    firsts, rest = {}, []
    for pair in pairs:
        key = (pair["kind"], relation(pair))
        if key in firsts:
            rest.append(pair)
        else:
            firsts[key] = pair
    return (list(firsts.values()) + rest)[:count]


def describe_copies(out):
    """What ``prepare`` found and did with the copies, in a few lines of text (from
    ``OUT/copies.json`` and ``OUT/splits/meta.json``)."""
    saved = read_json(Path(out) / "copies.json", keys=("pairs", "photos"))
    meta = read_json(Path(out) / "splits" / "meta.json", keys=("copies",))["copies"]
    pairs, photos = saved["pairs"], saved["photos"]
    if not pairs:
        return f"Copies: none among the {photos:,} checked photos (no exact or near copies)."
    lines = [
        f"Copies: {meta['groups']:,} groups hold {meta['images']:,} of the {photos:,} checked "
        f"photos ({meta['images'] - meta['groups']:,} more than one of each)."
    ]
    for kind, name in KINDS.items():
        counts = Counter(relation(pair) for pair in pairs if pair["kind"] == kind)
        lines.append(
            f"  {name}: {sum(counts.values()):,} pairs: "
            + ", ".join(f"{counts[where]:,} {where}" for where in RELATIONS)
        )
    if meta["labelled_both"]:
        both = next(pair for pair in pairs if relation(pair) == "other class")
        lines.append(
            f"  {meta['labelled_both']:,} groups are labelled both cat and dog, kept in training "
            f"(e.g. {both['a']} and {both['b']})."
        )
    placed = meta["placed"]
    lines.append(
        f"  Each group is kept whole: {placed['train']:,} in train, {placed['val']:,} in val, "
        f"{placed['test']:,} in test; no validation or test photo has a copy in another part."
    )
    return "\n".join(lines)
