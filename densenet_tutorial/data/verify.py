"""Step 3: decode every file once and keep only the images the input pipeline can read.

A header check is not enough: Microsoft's PetImages download holds zero-byte and truncated
JPEGs behind valid headers, and valid Exif JPEGs without the ``JFIF`` marker that keras.io's
example filters on (it deletes 1,590 files and still prints "Corrupt JPEG data" warnings).
``inspect_file`` reads a file and decodes it with OpenCV, at 1/8 scale: libjpeg still reads
and entropy-decodes every byte of the image data, so truncated and corrupt files fail as
they would at full size, but most of the inverse DCT is skipped (about 4x faster). A file
is rejected when it

- is empty, or is not a JPEG, PNG, GIF or BMP (what ``tf.io.decode_image`` reads),
  whatever its extension says (``Thumbs.db``, an HTML error page saved as ``.jpg``);
- cannot be decoded (truncated, corrupt);
- decodes, but makes the decoder print a warning such as libjpeg's "Corrupt JPEG data: 40
  extraneous bytes before marker 0xd9": TensorFlow would print that line in every epoch.

Grayscale, CMYK and PNG-inside-``.jpg`` files are valid; the pipeline decodes them to RGB.
From the bytes and the small image it has anyway, the check also keeps what ``copies``
needs to find copies: the SHA-256 of the file, and the perceptual hash and the thumbnail of
the image. Files are checked in parallel worker processes, each catching its own decoder
warnings (libjpeg writes them to the C-level stderr). The workers are started fresh
("spawn"), so a script that calls ``verify_images`` or ``prepare`` needs the usual
``if __name__ == "__main__":`` guard (notebooks and ``python -m densenet_tutorial`` do not).

Verdicts are cached in ``OUT/checked.csv``, so a rerun decodes nothing: a file whose path,
size and modification time are unchanged keeps its verdict without being read; any other
file is read and keeps its verdict if a file of the same size and CRC-32 was checked before
(changed bytes keep both with a chance of one in four billion). That is what happens in a
new Colab runtime: kagglehub extracts the same photos again, every modification time is
new, and the check reads the files instead of decoding them again. A file whose bytes
changed is decoded again.
"""

import binascii
import concurrent.futures
import hashlib
import multiprocessing
import os
import tempfile
import zlib
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
from tqdm.auto import tqdm

from densenet_tutorial.data import copies
from densenet_tutorial.data.files import DamagedFile, read_csv, rebuilding, write_csv

SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM")
"""The first bytes of JPEG, PNG, GIF and BMP files: the formats ``tf.io.decode_image`` reads."""


class Verdict(NamedTuple):
    """What the check learns of one file, as ``OUT/checked.csv`` keeps it (all text)."""

    problem: str  # why the file is unusable, or "" if it decodes cleanly
    crc32: str  # the CRC-32 of the file's bytes (zlib's, as in zip files), in hex
    sha256: str  # the SHA-256 of the file's bytes, in hex
    hash: str = ""  # the image's perceptual hash (``copies.perceptual_hash``), in hex
    mirror: str = ""  # the perceptual hash of its mirror image
    thumbnail: str = ""  # its 8x8 colour thumbnail (``copies.image_features``), base64


def inspect_file(path):
    """The ``Verdict`` on the image file at ``path``: decoded once, at 1/8 scale."""
    data = Path(path).read_bytes()
    digest = f"{zlib.crc32(data):08x}", hashlib.sha256(data).hexdigest()
    if not data:
        return Verdict("empty file (0 bytes)", *digest)
    if not data.startswith(SIGNATURES):
        return Verdict(f"not a JPEG, PNG, GIF or BMP image (starts with {data[:8]!r})", *digest)
    messages_before = os.lseek(2, 0, os.SEEK_END)
    image = reduced_image(data)
    messages = read_decoder_messages(messages_before)
    if image is None:
        problem = f"cannot be decoded (truncated or corrupt){': ' + messages if messages else ''}"
        return Verdict(problem, *digest)
    if messages:
        return Verdict(f"decoder warning: {messages}", *digest)
    return Verdict("", *digest, *copies.encode_features(image_features(data, image)))


def reduced_image(data):
    """The image in the file's bytes ``data``, decoded at 1/8 scale (None if it cannot be)."""
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_REDUCED_COLOR_8)


def image_features(data, image):
    """``copies.image_features`` of ``image``, the ``reduced_image`` of ``data``; a photo too
    small for the hash at 1/8 scale is decoded again at its full size."""
    if min(image.shape[:2]) < copies.HASH_SIDE:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return copies.image_features(image)


def read_decoder_messages(start):
    """What the decoder printed to stderr since offset ``start`` (see ``capture_stderr``)."""
    end = os.lseek(2, 0, os.SEEK_END)
    if end <= start:
        return ""
    return os.pread(2, end - start, start).decode(errors="replace").strip().replace("\n", " ")


def capture_stderr():
    """Worker set-up: send this process's C-level stderr to a private temporary file.

    libjpeg prints its warnings there, so ``inspect_file`` can read back which file caused
    which message. Runs only in the worker processes, never in the user's process.
    """
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 2)  # fd 2 stays open after ``log`` is closed
    cv2.setNumThreads(1)


def check_files(paths, workers=None, progress=True):
    """``inspect_file`` for each path, in parallel worker processes, with a progress bar."""
    if not paths:
        return []
    workers = workers or os.cpu_count() or 1
    # "spawn" starts clean processes: forking one that already runs TensorFlow's threads
    # can deadlock.
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(workers, context, capture_stderr) as pool:
        verdicts = pool.map(
            inspect_file, paths, chunksize=max(1, min(256, len(paths) // (8 * workers)))
        )
        return list(
            tqdm(
                verdicts,
                total=len(paths),
                desc="Checking images",
                unit="file",
                disable=not progress,
            )
        )


def checksums(paths, progress=True, chunk=512):
    """The CRC-32 (in hex) of each file of ``paths``, read in threads (zlib and file reads
    release Python's lock), ``chunk`` files per task. CRC-32 is the checksum of zip files,
    computed at several GB/s: 25,000 photos are read and summed in well under a second, a small
    part of decoding them."""

    def sums(some):
        return [f"{zlib.crc32(Path(path).read_bytes()):08x}" for path in some]

    chunks = [paths[start : start + chunk] for start in range(0, len(paths), chunk)]
    found = []
    bar = tqdm(total=len(paths), desc="Recognising checked files", unit="file",
               disable=not progress)  # fmt: skip
    with bar, concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        for some in pool.map(sums, chunks):
            found += some
            bar.update(len(some))
    return found


CACHE_FIELDS = ("path", "size", "mtime_ns", *Verdict._fields)


def read_cache(cache_file):
    """``{path: (size, mtime_ns, Verdict)}`` of ``checked.csv`` (all text); empty if there is
    none. One that is damaged or of an older kind is set aside and built again (said in a
    line): every file is then decoded again."""
    if not cache_file.exists():
        return {}
    try:
        rows = read_csv(cache_file, CACHE_FIELDS)
        cached = {
            row["path"]: (row["size"], row["mtime_ns"], Verdict(*(row[f] for f in Verdict._fields)))
            for row in rows
        }
        for size, mtime_ns, verdict in cached.values():
            int(size), int(mtime_ns), int(verdict.crc32, 16)
            thumbnail = copies.decode_features(*verdict[3:])[2] if not verdict.problem else b""
            if thumbnail and len(thumbnail) != copies.THUMBNAIL_BYTES:
                raise ValueError("a thumbnail of another size")
    except (ValueError, binascii.Error) as error:
        rebuilding(DamagedFile(cache_file, f"a value it cannot hold: {error}"), cache_file.parent)
        return {}
    except DamagedFile as damage:
        rebuilding(damage, cache_file.parent)
        return {}
    return cached


def check_images(root, files, out, workers=None, progress=True):
    """``{relative_path: Verdict}`` for ``files`` (``[(relative_path, label), ...]`` under
    ``root``), decoding only what ``OUT/checked.csv`` does not know, and updating it."""
    root, out = Path(root), Path(out)
    cache_file = out / "checked.csv"
    cached = read_cache(cache_file)
    keys, verdicts, unknown = {}, {}, []
    for path, _ in files:
        status = os.stat(os.path.join(root, path))
        keys[path] = (str(status.st_size), str(status.st_mtime_ns))
        size, mtime_ns, verdict = cached.get(path, (None, None, None))
        if (size, mtime_ns) == keys[path]:
            verdicts[path] = verdict
        else:
            unknown.append(path)
    if unknown and cached:  # extracted again, moved or renamed: recognise them by content
        by_content = {(size, verdict.crc32): verdict for size, _, verdict in cached.values()}
        sums = checksums([os.path.join(root, path) for path in unknown], progress)
        for path, crc in zip(unknown, sums, strict=True):
            if (keys[path][0], crc) in by_content:
                verdicts[path] = by_content[keys[path][0], crc]
        unknown = [path for path in unknown if path not in verdicts]
    checked = check_files([os.path.join(root, path) for path in unknown], workers, progress)
    verdicts.update(zip(unknown, checked, strict=True))
    write_csv(cache_file, CACHE_FIELDS,
              [(path, *keys[path], *verdicts[path]) for path in sorted(keys)])  # fmt: skip
    return verdicts


def verify_images(root, files, out, workers=None, progress=True):
    """Check every file of ``files`` (``[(relative_path, label), ...]`` under ``root``).

    Returns the valid ``(relative_path, label)`` pairs and writes the rejected ones with
    their reason to ``OUT/rejected.csv``. Only files that ``OUT/checked.csv`` does not know
    (by path, size and modification time, else by size and content) are decoded again.
    """
    return keep_valid(files, check_images(root, files, out, workers, progress), out)


def keep_valid(files, verdicts, out):
    """The valid ``files`` by their ``verdicts``; the others go to ``OUT/rejected.csv``."""
    rejected = [(path, label, verdicts[path].problem) for path, label in files
                if verdicts[path].problem]  # fmt: skip
    write_csv(Path(out) / "rejected.csv", ("path", "label", "reason"), sorted(rejected))
    return [(path, label) for path, label in files if not verdicts[path].problem]


def photo_features(files, verdicts):
    """``[(path, label, sha256, (hash, mirror hash, thumbnail)), ...]`` of valid ``files``,
    the features as ``checked.csv`` keeps them (text): what ``copies.record_copies`` reads."""
    return [(path, label, verdicts[path].sha256,
             (verdicts[path].hash, verdicts[path].mirror, verdicts[path].thumbnail))
            for path, label in files]  # fmt: skip
