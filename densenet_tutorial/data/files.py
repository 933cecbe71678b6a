"""Writing and reading the files the project keeps: a reader never sees half a file, and a
damaged one is never a traceback.

Each file is written to a temporary name in the same folder, flushed to the disk, then
renamed over the old one (``os.replace`` is atomic on POSIX and Windows), so an interrupted
run leaves either the previous file or the new one, never a mixture. The file it replaces is
first cut to 0 bytes (``discard``): on Google Drive a replaced or deleted file goes to Drive's
trash, which counts against the storage quota for 30 days, and an empty one costs nothing there.

A file can still arrive damaged (a Drive sync cut off, a file edited by hand): the readers
here (``read_text``, ``read_json``, ``read_csv``) raise ``DamagedFile`` for anything that is
not what this project writes, and the caller rebuilds the file where it can (a cache) or moves
it aside with ``set_aside`` (never deleting it) and says in one line what to do.
"""

import contextlib
import csv
import io
import json
import os
import shutil
import time
from pathlib import Path

from densenet_tutorial.errors import ProjectError


class DamagedFile(ProjectError):
    """A kept file that cannot be read as this project wrote it (cut short, garbled)."""

    def __init__(self, path, reason, then=""):
        super().__init__(f"{path} is damaged ({reason}){': ' + then if then else ''}")
        self.path, self.reason = Path(path), reason


def discard(path):
    """Delete ``path`` after cutting it to 0 bytes, so that Google Drive's trash, which keeps
    deleted files for 30 days against the quota, keeps an empty file (no error if absent)."""
    with contextlib.suppress(FileNotFoundError):
        os.truncate(path, 0)
        os.unlink(path)


def write_then_rename(path, write):
    """Call ``write(temporary)`` for a file beside ``path``, flush it to the disk, rename it.

    Whatever stops the write (a full disk, a runtime cut off) leaves the file that was at
    ``path`` before, or the new one, whole: never a mixture. The old file is not replaced in
    place, which on Google Drive would put all its bytes in the trash: it is renamed aside
    (``.NAME.old``), the new one renamed to ``path``, and only then is the old one emptied and
    deleted (``discard``).
    """
    path = Path(path)
    temporary = path.with_name(f".{path.stem}.partial{path.suffix}")
    old = path.with_name(f".{path.stem}.old{path.suffix}")
    try:
        write(temporary)
        with open(temporary, "rb+") as file:
            os.fsync(file.fileno())
        if path.exists():
            discard(old)  # one left by a run cut off between the two renames below
            os.replace(path, old)  # a rename: nothing goes to Drive's trash
        os.replace(temporary, path)
    except BaseException:
        discard(temporary)
        raise
    discard(old)


def recover(path):
    """``path``, renamed back from ``.NAME.old`` if a run was cut off between the two renames
    of ``write_then_rename`` (the file is then missing, its previous version whole)."""
    old = path.with_name(f".{path.stem}.old{path.suffix}")
    if not path.exists() and old.exists():
        old.rename(path)
    return path


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


def read_text(path):
    """The UTF-8 text of ``path``; ``DamagedFile`` if its bytes are not UTF-8."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise DamagedFile(path, f"not UTF-8 text: byte {error.start}") from error


def read_json(path, keys=()):
    """The JSON object in ``path``; ``DamagedFile`` if it is not one, or lacks one of ``keys``."""
    try:
        value = json.loads(read_text(path))
    except json.JSONDecodeError as error:
        raise DamagedFile(path, f"not JSON: {error.msg} at line {error.lineno}") from error
    missing = [key for key in keys if not isinstance(value, dict) or key not in value]
    if not isinstance(value, dict) or missing:
        raise DamagedFile(path, f"JSON without {', '.join(map(repr, missing)) or 'an object'}")
    return value


def read_csv_rows(path):
    """``(header, rows)`` of a CSV file, each a list of strings; ``DamagedFile`` if not UTF-8."""
    header, *rows = list(csv.reader(io.StringIO(read_text(path), newline=""))) or [[]]
    return header, rows


def read_csv(path, fields=None):
    """The rows of a CSV file written by ``write_csv``, as dictionaries.

    ``DamagedFile`` if it is not UTF-8, its header is not ``fields`` (when given), or a row
    has more or fewer values than the header (a file cut short).
    """
    header, rows = read_csv_rows(path)
    if fields is not None and tuple(header) != tuple(fields):
        raise DamagedFile(path, f"its first line is not {','.join(fields)}")
    if not header or any(len(row) != len(header) for row in rows):
        raise DamagedFile(path, "a line with too few or too many values")
    return [dict(zip(header, row, strict=True)) for row in rows]


def set_aside(folder, paths):
    """Move ``paths`` (inside ``folder``) into a new ``folder/set-aside-TIME/``, keeping their
    places below ``folder``; never delete. Returns the new folder."""
    folder = Path(folder)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = folder / f"set-aside-{stamp}"
    number = 1
    while aside.exists():
        number += 1
        aside = folder / f"set-aside-{stamp}-{number}"
    for path in paths:
        target = aside / Path(path).relative_to(folder)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(path, target)
    return aside


def rebuilding(damage, folder):
    """Set aside the damaged cache of ``damage`` (a ``DamagedFile``) and say in one line that
    it is built again."""
    aside = set_aside(folder, [damage.path])
    print(f"{damage}: it is built again (the damaged file is kept in {aside}).")
