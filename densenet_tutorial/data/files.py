"""Writing result files safely: a reader never sees half a file.

Each file is written to a temporary name in the same folder, flushed to the disk, then
renamed over the old one (``os.replace`` is atomic on POSIX and Windows), so an interrupted
run leaves either the previous file or the new one, never a mixture.
"""

import contextlib
import csv
import io
import os
from pathlib import Path


def write_then_rename(path, write):
    """Call ``write(temporary)`` for a file beside ``path``, flush it to the disk, rename it.

    Whatever stops the write (a full disk, a runtime cut off) leaves the file that was at
    ``path`` before, or the new one, whole: never a mixture.
    """
    path = Path(path)
    temporary = path.with_name(f".{path.stem}.partial{path.suffix}")
    try:
        write(temporary)
        with open(temporary, "rb+") as file:
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        raise


def write_atomically(path, text):
    """Write ``text`` to ``path`` (UTF-8, ``\\n`` line ends) by a write-then-rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_then_rename(path, lambda file: file.write_text(text, encoding="utf-8", newline="\n"))


def write_csv(path, header, rows):
    """Write a CSV file atomically, with the same bytes on every platform."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    write_atomically(path, buffer.getvalue())


def read_csv(path):
    """The rows of a CSV file written by ``write_csv``, as dictionaries."""
    with open(path, encoding="utf-8", newline="") as file:
        return list(csv.DictReader(file))
