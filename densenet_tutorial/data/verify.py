"""Step 3: decode every file once and keep only the images the input pipeline can read.

A header check is not enough: Microsoft's PetImages download holds zero-byte and truncated
JPEGs behind valid headers, and valid Exif JPEGs without the ``JFIF`` marker that keras.io's
example filters on (it deletes 1,590 files and still prints "Corrupt JPEG data" warnings).
``find_problem`` reads a file and decodes it with OpenCV, at 1/8 scale: libjpeg still reads
and entropy-decodes every byte of the image data, so truncated and corrupt files fail as
they would at full size, but most of the inverse DCT is skipped (about 4x faster). A file
is rejected when it

- is empty, or is not a JPEG, PNG, GIF or BMP (what ``tf.io.decode_image`` reads),
  whatever its extension says (``Thumbs.db``, an HTML error page saved as ``.jpg``);
- cannot be decoded (truncated, corrupt);
- decodes, but makes the decoder print a warning such as libjpeg's "Corrupt JPEG data: 40
  extraneous bytes before marker 0xd9": TensorFlow would print that line in every epoch.

Grayscale, CMYK and PNG-inside-``.jpg`` files are valid; the pipeline decodes them to RGB.
Files are checked in parallel worker processes, each catching its own decoder warnings
(libjpeg writes them to the C-level stderr). The workers are started fresh ("spawn"), so a
script that calls ``verify_images`` or ``prepare`` needs the usual
``if __name__ == "__main__":`` guard (notebooks and ``python -m densenet_tutorial`` do not).
Verdicts are cached in ``OUT/checked.csv`` by path, size and modification time, so a rerun
on unchanged files decodes nothing.
"""

import concurrent.futures
import multiprocessing
import os
import tempfile
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from densenet_tutorial.data.files import read_csv, write_csv

SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM")
"""The first bytes of JPEG, PNG, GIF and BMP files: the formats ``tf.io.decode_image`` reads."""


def find_problem(path):
    """Why the image file at ``path`` is unusable, or ``""`` if it decodes cleanly."""
    data = Path(path).read_bytes()
    if not data:
        return "empty file (0 bytes)"
    if not data.startswith(SIGNATURES):
        return f"not a JPEG, PNG, GIF or BMP image (starts with {data[:8]!r})"
    messages_before = os.lseek(2, 0, os.SEEK_END)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_REDUCED_COLOR_8)
    messages = read_decoder_messages(messages_before)
    if image is None:
        return f"cannot be decoded (truncated or corrupt){': ' + messages if messages else ''}"
    if messages:
        return f"decoder warning: {messages}"
    return ""


def read_decoder_messages(start):
    """What the decoder printed to stderr since offset ``start`` (see ``capture_stderr``)."""
    end = os.lseek(2, 0, os.SEEK_END)
    if end <= start:
        return ""
    return os.pread(2, end - start, start).decode(errors="replace").strip().replace("\n", " ")


def capture_stderr():
    """Worker set-up: send this process's C-level stderr to a private temporary file.

    libjpeg prints its warnings there, so ``find_problem`` can read back which file caused
    which message. Runs only in the worker processes, never in the user's process.
    """
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 2)  # fd 2 stays open after ``log`` is closed
    cv2.setNumThreads(1)


def check_files(paths, workers=None, progress=True):
    """``find_problem`` for each path, in parallel worker processes, with a progress bar."""
    if not paths:
        return []
    workers = workers or os.cpu_count() or 1
    # "spawn" starts clean processes: forking one that already runs TensorFlow's threads
    # can deadlock.
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(workers, context, capture_stderr) as pool:
        verdicts = pool.map(
            find_problem, paths, chunksize=max(1, min(256, len(paths) // (8 * workers)))
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


def verify_images(root, files, out, workers=None, progress=True):
    """Check every file of ``files`` (``[(relative_path, label), ...]`` under ``root``).

    Returns the valid ``(relative_path, label)`` pairs and writes the rejected ones with
    their reason to ``OUT/rejected.csv``. Only files whose size or modification time
    changed since the last run (``OUT/checked.csv``) are decoded again.
    """
    root, out = Path(root), Path(out)
    cache_file = out / "checked.csv"
    cached = {}
    if cache_file.exists():
        cached = {row["path"]: row for row in read_csv(cache_file)}
    keys = {}
    for path, _ in files:
        status = (root / path).stat()
        keys[path] = (str(status.st_size), str(status.st_mtime_ns))
    known = {
        path: cached[path]["problem"]
        for path in keys
        if path in cached and (cached[path]["size"], cached[path]["mtime_ns"]) == keys[path]
    }
    unknown = [path for path in keys if path not in known]
    problems = check_files([str(root / path) for path in unknown], workers, progress)
    known.update(zip(unknown, problems, strict=True))
    write_csv(cache_file, ("path", "size", "mtime_ns", "problem"),
              [(path, *keys[path], known[path]) for path in sorted(keys)])  # fmt: skip
    rejected = [(path, label, known[path]) for path, label in files if known[path]]
    write_csv(out / "rejected.csv", ("path", "label", "reason"), sorted(rejected))
    return [(path, label) for path, label in files if not known[path]]
