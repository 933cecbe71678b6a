"""The run folder: what ``train`` keeps in it, and the rules that let a run resume there.

- ``check_run_folder``: resume a folder whose ``config.json`` holds the same settings, start
  in an empty one, refuse anything else (one line naming what differs);
- ``write_config``: the run's settings and environment in ``config.json``;
- ``make_callbacks``: each epoch's time (``EpochSeconds``), history, TensorBoard logs, the best
  network (``SaveBestNetwork``, after ``best_so_far``) and the training state (``checkpoints``);
- ``write_failure``: a write that failed for want of room or of a working disk, as one line
  saying what was kept.
"""

import errno
import json
import time

import keras

from densenet_tutorial import checkpoints
from densenet_tutorial.data.files import (
    DamagedFile,
    read_json,
    recover,
    set_aside,
    write_atomically,
    write_then_rename,
)
from densenet_tutorial.errors import RunError, SettingError
from densenet_tutorial.evaluate import read_history

# A write that failed for want of room or a working disk (a full Google Drive, a dropped mount)
WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.EFBIG, errno.ENOTCONN,
                errno.ESTALE, errno.EACCES, errno.EPERM}  # fmt: skip


def check_run_folder(out_dir, settings):
    """True to resume the run in ``out_dir``, False to start one; refuse a different config.

    A folder holding a ``config.json`` with the same settings is resumed (``checkpoints.resume``
    picks up after the last finished epoch); so is one whose ``config.json`` is damaged (set
    aside) or missing beside a ``backup/``: ``train`` writes it again from ``settings``. Any
    other non-empty folder is left alone.
    """
    config = recover(out_dir / "config.json")  # a write cut off between its two renames
    if config.exists():
        try:
            saved = read_json(config, keys=("settings",))["settings"]
        except DamagedFile as damage:
            aside = set_aside(out_dir, [config])
            print(f"{damage}: it is kept in {aside} and written again from these settings; the "
                  f"run resumes if its saved training state fits this network.")  # fmt: skip
            return True
        wanted = json.loads(json.dumps(settings))  # tuples -> lists, as they were saved
        changed = [
            f"{name}: {saved.get(name)!r} -> {wanted.get(name)!r}"
            for name in sorted(set(saved) | set(wanted))
            if saved.get(name) != wanted.get(name)
        ]
        if changed:
            raise SettingError(
                f"{out_dir} holds a run with a different configuration ({'; '.join(changed)}). "
                f"Rerun with the same settings to resume it, or choose a new --out folder."
            )
        return True
    if (out_dir / checkpoints.BACKUP).is_dir():
        print(f"{config} is missing: it is written again from these settings; the run resumes "
              f"if its saved training state fits this network.")  # fmt: skip
        return True
    if out_dir.exists() and any(out_dir.iterdir()):
        raise SettingError(
            f"{out_dir} is not empty and holds no config.json, so it is not a training run: "
            f"choose a new --out folder."
        )
    return False


def write_config(out_dir, settings, record):
    """Start the run folder: ``config.json`` with the ``settings`` a rerun must match and the
    ``record`` of where it runs (``training.environment``)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    config = {"settings": settings, "run": record}
    write_atomically(out_dir / "config.json", json.dumps(config, indent=2) + "\n")


class SaveBestNetwork(keras.callbacks.Callback):
    """Save ``model.network`` (no augmentation) whenever ``monitor`` beats its best so far.

    A tie keeps the earlier epoch. ``best`` is the best value of the epochs already run, so
    a resumed run only replaces the saved model with a better one. The file is written under
    a temporary name and then renamed, so a failed write leaves the previous best whole.
    """

    def __init__(self, path, monitor="val_accuracy", best=None):
        super().__init__()
        self.path, self.monitor, self.best = path, monitor, best

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is not None and (self.best is None or value > self.best):
            write_then_rename(self.path, self.model.network.save)
            self.best = float(value)


class EpochSeconds(keras.callbacks.Callback):
    """Add ``epoch_seconds``, the wall time of the epoch (validation included), to its logs.

    It comes first among the callbacks, so ``history.csv`` records it with the metrics.
    """

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs["epoch_seconds"] = time.perf_counter() - self.start


def best_so_far(history_csv, monitor="val_accuracy"):
    """The best ``monitor`` value of the epochs already run (None for a new run, or where
    their best network is not there to beat)."""
    if not history_csv.exists() or not (history_csv.parent / "best.keras").exists():
        return None
    values = read_history(history_csv).get(monitor)
    return float(values.max()) if values is not None and values.size else None


def make_callbacks(out_dir, backup=None):
    """Epoch time, history, TensorBoard, the best network by validation accuracy, a backup.

    The backup (``checkpoints.TrainingBackup``: the whole training state) comes last, so an
    epoch counts as done only once the others have recorded it. It keeps the states of the
    last two epochs, so that a runtime cut off while one is being written resumes from the
    other, and one state once the run is finished, so that rerunning it trains no further.
    """
    return [
        EpochSeconds(),
        keras.callbacks.CSVLogger(out_dir / "history.csv", append=True),
        keras.callbacks.TensorBoard(log_dir=out_dir / "logs"),
        SaveBestNetwork(out_dir / "best.keras", best=best_so_far(out_dir / "history.csv")),
        backup or checkpoints.TrainingBackup(out_dir / checkpoints.BACKUP),
    ]


def write_failure(error, out_dir, backup, epochs):
    """The ``RunError`` for an ``OSError`` that is a failed write to the run folder, else None.

    ``backup`` is the run's ``checkpoints.TrainingBackup`` (None before it was read).
    """
    if error.errno not in WRITE_ERRORS:
        return None
    saved = (backup.saved or 0) if backup else None
    return RunError(checkpoints.write_failure_message(out_dir, error, saved, epochs))
