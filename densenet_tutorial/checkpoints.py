"""The training state of a run, in its ``backup/`` folder: saved after every epoch, checked and
restored when the run is started again, and sparing with the disk (Google Drive on Colab).

A resumed run must be the run that was interrupted, so the state holds everything the next
epoch depends on: the model's variables (weights, BatchNormalization's moving statistics, the
random layers' seed states) and the optimizer's (momentum; ``iterations``, the step count that
drives the learning-rate schedule; the loss scale of mixed float16), with the number of
finished epochs, which fixes the next epoch's order (``data.pipeline.epoch_order``).

Why not ``keras.callbacks.BackupAndRestore`` (``keras/src/callbacks/backup_and_restore.py``,
the same in Keras 3.13.2 and 3.15.1): it falls back to its previous state only on ``OSError``,
and a weights file whose second half is zeros raises h5py's ``RuntimeError``, on every rerun;
with ``double_checkpoint`` it copies the whole file every epoch before writing it again; and
``save_weights`` stores the random layers' seeds nowhere, and a ``LossScaleOptimizer``'s
momentum twice (once as its own variables, once as its inner optimizer's).

Here each state is one NumPy ``.npz`` file (a zip archive, ``numpy.savez``), whose members
carry CRC-32 checksums that ``numpy.load`` verifies, so a truncated, zeroed or altered file
is refused instead of loaded; the variables are matched by position, as ``get_weights`` and
``set_weights`` do, after checking each one's name, shape and dtype. The state after epoch e
goes to ``state-{e % 2}.npz``, written under a temporary name and renamed, so the previous
state is never touched while the new one is written.
"""

import re
import zipfile
from pathlib import Path

import keras
import numpy as np

from densenet_tutorial.data.files import (
    DamagedFile,
    discard,
    read_csv_rows,
    recover,
    set_aside,
    write_csv,
    write_then_rename,
)

BACKUP = "backup"  # the folder inside the run folder
SLOTS = ("state-0.npz", "state-1.npz")  # the state after epoch e is in SLOTS[e % 2]
PRODUCTS = ("history.csv", "best.keras", "logs")  # what the epochs leave beside the backup


class UnusableState(Exception):
    """A saved state that cannot be restored (damaged, or not this model's)."""


def state_variables(model):
    """The model's variables, then its optimizer's: each once, in a fixed order."""
    variables, seen = [], set()
    for variable in [*model.variables, *model.optimizer.variables]:
        if id(variable) not in seen:
            seen.add(id(variable))
            variables.append(variable)
    return variables


def plain_name(variable):
    """A variable's path without the numbers Keras appends to repeated names
    (``seed_generator_3/seed_generator_state`` -> ``seed_generator/seed_generator_state``),
    which depend on what else the process built before."""
    return re.sub(r"_\d+(?=/|$)", "", variable.path)


def save_state(path, model, epoch):
    """Write the training state after ``epoch`` finished epochs to ``path`` (``.npz``)."""
    variables = state_variables(model)
    arrays = {f"variable_{i}": keras.ops.convert_to_numpy(v) for i, v in enumerate(variables)}
    names = np.array([plain_name(v) for v in variables])

    def write(temporary):
        with open(temporary, "wb") as file:
            np.savez(file, epoch=np.int64(epoch), names=names, **arrays)

    write_then_rename(path, write)


def saved_epoch(path):
    """The number of finished epochs recorded in the state at ``path``."""
    try:
        with np.load(path) as state:
            return int(state["epoch"])
    except Exception as error:  # a damaged file can fail in any of zipfile's or NumPy's ways
        raise UnusableState(describe(error)) from error


def load_state(path, model):
    """Read the whole state at ``path``, check it against ``model``, then assign it.

    Nothing is assigned unless every array was read (its CRC-32 checked) and fits its
    variable, so a damaged file leaves the model as it was.
    """
    variables = state_variables(model)
    try:
        with np.load(path) as state:
            names = [str(name) for name in state["names"]]
            arrays = [state[f"variable_{i}"] for i in range(len(names))]
            epoch = int(state["epoch"])
    except Exception as error:  # a damaged file can fail in any of zipfile's or NumPy's ways
        raise UnusableState(describe(error)) from error
    if names != [plain_name(v) for v in variables]:
        raise UnusableState("it holds the variables of another model")
    for variable, array in zip(variables, arrays, strict=True):
        if tuple(array.shape) != tuple(variable.shape) or array.dtype != variable.dtype:
            raise UnusableState(f"{variable.path} has shape {array.shape} {array.dtype}")
    for variable, array in zip(variables, arrays, strict=True):
        variable.assign(array)
    return epoch


def describe(error):
    """An error as a few words for a one-line message."""
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text[:120]}" if text else type(error).__name__


class TrainingBackup(keras.callbacks.Callback):
    """Save the training state after every epoch into ``folder``; ``restore`` it on a rerun.

    It must be the last callback, so that an epoch counts as done only once the history and
    the best network have recorded it. The state after epoch e replaces the one after epoch
    e - 2, never the newest, so a runtime cut off while writing leaves the state before.
    When the last epoch is done, the older state is deleted: a finished run keeps one, which
    says that it is finished (rerunning it trains no further).
    """

    def __init__(self, folder):
        super().__init__()
        self.folder = Path(folder)
        self.saved = None  # the finished epochs of the newest state on disk

    def on_epoch_end(self, epoch, logs=None):
        self.folder.mkdir(parents=True, exist_ok=True)
        save_state(self.folder / SLOTS[(epoch + 1) % 2], self.model, epoch + 1)
        self.saved = epoch + 1

    def on_train_end(self, logs=None):
        if self.saved is not None and self.saved >= self.params["epochs"]:
            discard(self.folder / SLOTS[(self.saved + 1) % 2])

    def restore(self, model, epochs):
        """Restore the newest state that loads; return ``(finished epochs, unusable)``.

        ``unusable`` lists ``(path, reason)`` for each state file that exists but cannot be
        restored. A state that says the run is finished (``epochs`` done) is not loaded:
        nothing will train.
        """
        found, unusable = [], []
        for path in (self.folder / name for name in SLOTS):
            if path.exists():
                try:
                    found.append((saved_epoch(path), path))
                except UnusableState as error:
                    unusable.append((path, str(error)))
        for epoch, path in sorted(found, reverse=True):
            try:
                if epoch < epochs:
                    if not model.optimizer.built:
                        model.optimizer.build(model.trainable_variables)
                    load_state(path, model)
                self.saved = epoch
                return epoch, unusable
            except UnusableState as error:
                unusable.append((path, str(error)))
        return 0, unusable


def history_rows(history_csv, done):
    """The header and the rows of ``history.csv`` of the first ``done`` epochs, and whether
    the file holds anything else (rows of later epochs, a row cut short, or it is damaged:
    not UTF-8, or no ``epoch`` column, and then nothing is kept)."""
    if not history_csv.exists():
        return [], [], False
    try:
        header, rows = read_csv_rows(history_csv)
    except DamagedFile:
        return [], [], True
    if header[:1] != ["epoch"]:
        return [], [], True
    kept = [
        row for row in rows
        if len(row) == len(header) and all(row) and row[0].isdigit() and int(row[0]) < done
    ]  # fmt: skip
    return header, kept, len(kept) < len(rows)


def resume(out_dir, model, epochs, verbose=1):
    """Get the run in ``out_dir`` ready to go on; return its ``TrainingBackup`` and epochs done.

    The newest state that loads is restored into ``model``, and ``history.csv`` keeps the
    rows of the epochs that state has done. What cannot be used is moved to a new
    ``set-aside-TIME/`` folder, never deleted, and said in one line: a state file that does
    not load; the history with rows of epochs after the restored state (they will run again);
    if no state loads, what the lost epochs left (history, best network, TensorBoard logs), as
    the run starts again from epoch 1. A damaged ``history.csv`` goes too, with ``best.keras``
    if epochs remain (its score was in the history, so a later epoch may replace it); a
    damaged ``best.keras`` goes, and a finished run saves the network of its last state as
    ``best.keras`` instead (``model.network`` if ``model`` wraps the network).
    """
    backup = TrainingBackup(out_dir / BACKUP)
    done, unusable = backup.restore(model, epochs)
    history, best = out_dir / "history.csv", recover(out_dir / "best.keras")
    header, kept, more = history_rows(history, done)
    history_damaged = more and not header
    best_damaged = best.exists() and not whole_archive(best)
    moved = [path for path, _ in unusable]
    if done == 0 and (unusable or more or best.exists()):
        moved += [out_dir / name for name in PRODUCTS if (out_dir / name).exists()]
    else:
        moved += [history] if more else []
        moved += [best] if best_damaged or (history_damaged and done < epochs) else []
    aside = set_aside(out_dir, moved) if moved else None
    if done and more and header:
        write_csv(history, header, kept)
    lost = done >= epochs and not best.exists()  # damaged, or never renamed into place
    rebuilt = lost and save_last_network(backup, model, done)
    if moved or lost:
        damaged = [name for name, bad in (("history.csv", history_damaged),
                                          ("best.keras", best_damaged or lost)) if bad]  # fmt: skip
        print(set_aside_message(out_dir, done, unusable, aside, damaged, rebuilt, epochs))
    elif done and verbose:
        print(f"Resuming {out_dir} after epoch {done} of {epochs} (the state in {BACKUP}/).")
    return backup, done


def whole_archive(path):
    """Whether ``path`` is a zip archive (as a ``.keras`` file is) whose members all match
    their CRC-32 checksums."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        return False


def save_last_network(backup, model, done):
    """Save the network of the state after epoch ``done`` as ``best.keras``; whether it could."""
    try:
        load_state(backup.folder / SLOTS[done % 2], model)
    except UnusableState:
        return False
    network = getattr(model, "network", model)
    write_then_rename(backup.folder.parent / "best.keras", network.save)
    return True


def set_aside_message(out_dir, done, unusable, aside, damaged=(), rebuilt=False, epochs=None):
    """One line: what could not be used, where training goes on, where the rest now is."""
    reasons = "; ".join(f"{path.name}: {reason}" for path, reason in unusable)
    problems = [f"{out_dir / name} is {'damaged' if aside else 'missing'}" for name in damaged]
    if unusable and done == 0:
        problems.append(f"no training state in {out_dir / BACKUP} can be used ({reasons})")
    elif unusable:
        problems.append(f"a training state in {out_dir / BACKUP} cannot be used ({reasons})")
    elif done == 0:
        problems.append(f"{out_dir} holds epochs without a saved training state")
    elif not damaged:
        problems.append(f"{out_dir / 'history.csv'} goes past the saved training state")
    if not done:
        where = "training starts again from epoch 1"
    elif epochs is not None and done >= epochs:
        where = "the training is finished"
        if rebuilt:
            where += (f"; best.keras is now the network after its last epoch ({done}), evaluated "
                      f"instead of the best one")  # fmt: skip
        if "history.csv" in damaged:
            where += "; the training curves are not drawn"
    else:
        where = f"training resumes after epoch {done}"
        if "history.csv" in damaged:
            where += f"; history.csv and best.keras start again with epoch {done + 1}"
        elif damaged:
            where += f"; best.keras will be the best of the epochs from {done + 1} on"
    kept = f"; what could not be used is kept in {aside}" if aside else ""
    return f"{'; '.join(problems)}: {where}{kept}."


def write_failure_message(out_dir, error, done, epochs):
    """The one line for a write to the run folder that failed (a full Drive, an I/O error)."""
    what = f"Writing to {out_dir} failed ({describe(error)})"
    if done is None:  # before training: the backup is as it was
        kept = f"nothing finished was lost: {BACKUP}/ is as it was"
        then = "rerun the same command (or cell) to go on"
    elif done == 0:
        kept = "no epoch had finished yet, so nothing finished was lost"
        then = "rerun the same command (or cell) to start it"
    elif done >= epochs:
        kept = f"nothing finished was lost: all {epochs} epochs are saved"
        then = "rerun the same command (or cell) to evaluate it without training"
    else:
        kept = f"nothing finished was lost: the state after epoch {done} is in {BACKUP}/"
        then = f"rerun the same command (or cell) to resume at epoch {done + 1}"
    return (
        f"{what}: is the disk or Google Drive full, or the mount gone? Free some space (or "
        f"check the folder); {kept}; {then}."
    )
