"""Writing result files safely: a reader never sees half a file.

Each file is written to a temporary name in the same folder and then renamed over the old
one (``os.replace`` is atomic on POSIX and Windows), so an interrupted run leaves either the
previous file or the new one, never a mixture.
"""

import csv
import io
import os
import tempfile
from pathlib import Path


def write_atomically(path, text):
    """Write ``text`` to ``path`` (UTF-8, ``\\n`` line ends) by a write-then-rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


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
