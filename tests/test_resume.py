"""A run that stops and starts again: damaged backups, the same run after a resume, a disk
that fills up, the order of the epochs, and memory over several runs in one process.

The backups are damaged by hand, in the ways a network mount such as Google Drive can leave
a file when the runtime dies or the mount drops while it is written. The real runs use a
DenseNet of a few layers at 32 px on generated images.
"""

import builtins
import errno
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from collections import Counter

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import Record, StopAfter, second_half_zeros, small_split

from densenet_tutorial import checkpoints, training
from densenet_tutorial.cli import main
from densenet_tutorial.config import RunConfig
from densenet_tutorial.data import augmentation, pipeline
from densenet_tutorial.model import build_densenet

# --- the training state, saved and damaged by hand ------------------------------------------


def tiny_model(blocks=(1,), dropout=0.0):
    """A compiled DenseNet with the augmentation in front, its optimizer built."""
    network = build_densenet(blocks=blocks, growth_rate=4, input_shape=(32, 32, 3),
                             dropout=dropout)  # fmt: skip
    model = training.AugmentedModel(network, augmentation(seed=0))
    training.compile_model(model, training.learning_rate_schedule(16, 7, 3))  # as train does
    model.optimizer.build(model.trainable_variables)
    return model


def mark(model, epoch):
    """Give every variable values that say which epoch they belong to."""
    for i, variable in enumerate(checkpoints.state_variables(model)):
        variable.assign(np.full(variable.shape, 100 * epoch + i % 7, variable.dtype))


def marked_epoch(model):
    """Which epoch's values ``model`` holds (``mark``), or None for any other values."""
    values = [keras.ops.convert_to_numpy(v) for v in checkpoints.state_variables(model)]
    epochs = {int(v.flat[0]) // 100 for v in values if v.size}
    return epochs.pop() if len(epochs) == 1 else None


@pytest.fixture
def folder(tmp_path):
    """A run folder after two epochs: both states, their history, a best model, logs."""
    out = tmp_path / "run"
    model = tiny_model()
    backup = checkpoints.TrainingBackup(out / checkpoints.BACKUP)
    backup.set_model(model)
    backup.set_params({"epochs": 5})
    for epoch in (0, 1):
        mark(model, epoch + 1)
        backup.on_epoch_end(epoch)
    (out / "history.csv").write_text("epoch,loss,val_accuracy\n0,0.7,0.6\n1,0.6,0.7\n")
    with zipfile.ZipFile(out / "best.keras", "w") as best:  # a stand-in: a .keras file is a zip
        best.writestr("model.weights.h5", b"the network of epoch 2")
    (out / "logs").mkdir()
    return out


def newest(folder):
    return folder / checkpoints.BACKUP / checkpoints.SLOTS[2 % 2]


def older(folder):
    return folder / checkpoints.BACKUP / checkpoints.SLOTS[1 % 2]


def truncated(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def zeros_inside_an_array(path):  # the zip's directory intact, 64 bytes of a weight zeroed
    data = bytearray(path.read_bytes())
    with np.load(path) as state:
        largest = max(state.files, key=lambda name: state[name].nbytes)
        values = state[largest].tobytes()
    start = data.find(values[:256]) + 128
    data[start : start + 64] = bytes(64)
    path.write_bytes(bytes(data))


def random_bytes(path):
    path.write_bytes(np.random.default_rng(0).bytes(path.stat().st_size))


def empty(path):
    path.write_bytes(b"")


def missing(path):
    path.unlink()


def epoch_record_altered(path):  # the "metadata": the epoch is a member of the state itself
    data = bytearray(path.read_bytes())
    array = data.index(b"\x93NUMPY", data.index(b"epoch.npy"))  # its .npy inside the zip
    data[data.index(b"\n", array) + 1] ^= 0x01  # 2 finished epochs become 3
    path.write_bytes(bytes(data))


DAMAGE = [truncated, second_half_zeros, zeros_inside_an_array, random_bytes, empty,
          epoch_record_altered]  # fmt: skip


@pytest.mark.parametrize("damage", [*DAMAGE, missing], ids=lambda d: d.__name__)
def test_a_damaged_newest_state_resumes_from_the_one_before(folder, damage, capsys):
    damage(newest(folder))
    model = tiny_model()
    backup, done = checkpoints.resume(folder, model, epochs=5)
    assert done == 1 and marked_epoch(model) == 1  # the state after epoch 1, all of it
    assert backup.saved == 1
    # history.csv keeps the epochs of that state; the rest, and the damaged file, set aside
    assert (folder / "history.csv").read_text() == "epoch,loss,val_accuracy\n0,0.7,0.6\n"
    (aside,) = folder.glob("set-aside-*")
    assert "1,0.6,0.7" in (aside / "history.csv").read_text()
    assert (aside / checkpoints.BACKUP / newest(folder).name).exists() != (damage is missing)
    assert not newest(folder).exists() and older(folder).exists()
    assert (folder / "best.keras").exists()  # a network that was really trained and validated
    (line,) = capsys.readouterr().out.splitlines()
    assert "training resumes after epoch 1" in line and str(aside) in line


@pytest.mark.parametrize("damage", DAMAGE, ids=lambda d: d.__name__)
def test_a_damaged_older_state_is_set_aside_and_the_newest_restored(folder, damage, capsys):
    damage(older(folder))
    model = tiny_model()
    _, done = checkpoints.resume(folder, model, epochs=5)
    assert done == 2 and marked_epoch(model) == 2
    assert (folder / "history.csv").read_text().count("\n") == 3  # header and both epochs
    if damage is zeros_inside_an_array:  # its epoch reads; the rest is read only if needed
        assert older(folder).exists() and not list(folder.glob("set-aside-*"))
        return  # (the next epoch's state replaces it)
    (aside,) = folder.glob("set-aside-*")
    assert (aside / checkpoints.BACKUP / older(folder).name).exists()
    assert "cannot be used" in capsys.readouterr().out


def test_a_missing_older_state_is_no_damage(folder, capsys):
    missing(older(folder))
    model = tiny_model()
    _, done = checkpoints.resume(folder, model, epochs=5)
    assert done == 2 and marked_epoch(model) == 2
    assert not list(folder.glob("set-aside-*"))
    assert capsys.readouterr().out.splitlines() == [
        f"Resuming {folder} after epoch 2 of 5 (the state in backup/)."
    ]


@pytest.mark.parametrize("damages", [(truncated, second_half_zeros), (random_bytes, missing),
                                     (empty, epoch_record_altered)],
                         ids=lambda ds: "+".join(d.__name__ for d in ds))  # fmt: skip
def test_no_state_loads_so_the_run_starts_again_and_keeps_everything(folder, damages, capsys):
    for damage, path in zip(damages, (newest(folder), older(folder)), strict=True):
        damage(path)
    model = tiny_model()
    before = [keras.ops.convert_to_numpy(v) for v in checkpoints.state_variables(model)]
    backup, done = checkpoints.resume(folder, model, epochs=5)
    assert done == 0 and backup.saved is None
    after = [keras.ops.convert_to_numpy(v) for v in checkpoints.state_variables(model)]
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))  # untouched
    (aside,) = folder.glob("set-aside-*")
    for name in ("history.csv", "best.keras", "logs"):  # what the lost epochs left
        assert (aside / name).exists() and not (folder / name).exists(), name
    assert (aside / "history.csv").read_text().count("\n") == 3
    (line,) = capsys.readouterr().out.splitlines()
    assert "no training state" in line and "starts again from epoch 1" in line
    assert str(aside) in line


def test_a_state_of_another_network_is_not_loaded(folder, capsys):
    model = tiny_model(blocks=(2,))  # one more layer
    _, done = checkpoints.resume(folder, model, epochs=5)
    assert done == 0
    assert "another model" in capsys.readouterr().out


def test_states_alternate_and_a_finished_run_keeps_one(tmp_path):
    model = tiny_model()
    backup = checkpoints.TrainingBackup(tmp_path / "backup")
    backup.set_model(model)
    backup.set_params({"epochs": 3})
    for epoch in range(3):
        mark(model, epoch + 1)
        backup.on_epoch_end(epoch)
        states = {p.name for p in (tmp_path / "backup").iterdir()}  # no partial files either
        assert states == {checkpoints.SLOTS[n % 2] for n in (epoch, epoch + 1) if n}
        saved = {checkpoints.saved_epoch(tmp_path / "backup" / name) for name in states}
        assert saved == {epoch + 1, epoch} - {0}  # the newest two
    backup.on_train_end()
    (kept,) = (tmp_path / "backup").iterdir()
    assert checkpoints.saved_epoch(kept) == 3
    model = tiny_model()  # rerunning a finished run: nothing to load, nothing to train
    assert checkpoints.TrainingBackup(tmp_path / "backup").restore(model, 3) == (3, [])


def test_the_state_holds_momentum_step_count_loss_scale_and_seed_states():
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")  # Keras adds loss scaling
    try:
        # Dropout holds a random-generator state, as any Keras random layer a learner adds
        # would (the augmentation itself draws statelessly from the step count).
        model = tiny_model(dropout=0.2)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    paths = [v.path for v in checkpoints.state_variables(model)]
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    for part in ("iteration", "momentum", "dynamic_scale", "seed_generator_state", "moving_"):
        assert any(part in path for path in paths), part
    assert len(paths) == len(set(map(id, checkpoints.state_variables(model))))  # each once


# --- the order of the epochs -----------------------------------------------------------------


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    return small_split(tmp_path_factory.mktemp("resume"))


def epochs_of(stream, steps):
    """The labels and the first pixel of each image, epoch by epoch."""
    batches = list(stream)
    epochs = [batches[i : i + steps] for i in range(0, len(batches), steps)]
    return [np.concatenate([np.asarray(x, float)[:, 0, 0, 0] * 2 + np.asarray(y) for x, y in epoch])
            for epoch in epochs]  # fmt: skip


def test_the_order_of_an_epoch_depends_only_on_the_seed_and_its_number(split):
    splits, steps = split / "splits", 12  # 100 images in full batches of 8, 4 left out
    stream = pipeline.training_epochs(splits, range(3), 32, 8, seed=3)
    assert stream.element_spec[0].shape[0] == 8  # every batch full: one step shape under XLA
    all_three = epochs_of(stream, steps)
    resumed = epochs_of(pipeline.training_epochs(splits, range(1, 3), 32, 8, seed=3), steps)
    np.testing.assert_array_equal(resumed[0], all_three[1])  # a resume at epoch 2 replays it
    np.testing.assert_array_equal(resumed[1], all_three[2])
    assert not np.array_equal(all_three[0], all_three[1])  # each epoch its own order
    (whole,) = epochs_of(pipeline.make_dataset(splits, "train", 32, 100), 1)
    for epoch in all_three:  # 96 of the 100 images, each at most once: 4 left out
        assert len(epoch) == 96 and Counter(epoch) <= Counter(whole)
    other = epochs_of(pipeline.training_epochs(splits, range(1), 32, 8, seed=4), steps)
    assert not np.array_equal(other[0], all_three[0])


def count_decoding(monkeypatch):
    """The paths ``pipeline.load_image`` decodes from now on, each time it does."""
    decoded, load_image = [], pipeline.load_image

    def counted(path, image_size):
        token = tf.py_function(lambda p: decoded.append(p.numpy()) or 0, [path], tf.int64)
        with tf.control_dependencies([token]):
            return tf.identity(load_image(path, image_size))

    monkeypatch.setattr(pipeline, "load_image", counted)
    return decoded


@pytest.mark.parametrize("cap", [None, 3])
def test_each_training_image_is_decoded_once_however_many_epochs(split, monkeypatch, cap):
    decoded = count_decoding(monkeypatch)
    stream = pipeline.training_epochs(split / "splits", range(3), 32, 8, steps_per_epoch=cap)
    batches = sum(1 for _ in stream)
    assert batches == 3 * (cap or 12)
    assert len(decoded) == len(set(decoded)) == 100  # the cache serves epochs 2 and 3


# --- real runs: a damaged backup, a full disk ------------------------------------------------

TINY = RunConfig(image_size=32, blocks=(1, 1), growth_rate=4, batch_size=16, epochs=3, seed=1,
                 deterministic=True)  # fmt: skip


def test_a_run_of_three_epochs_decodes_each_image_once(split, tmp_path, monkeypatch):
    decoded = count_decoding(monkeypatch)
    training.train(split, tmp_path / "run", TINY, verbose=0)
    assert len(decoded) == len(set(decoded)) == 100 + 20 + 20  # train, validation, test


def history_epochs(out):
    return [row.split(",")[0] for row in (out / "history.csv").read_text().splitlines()[1:]]


def test_a_half_zeroed_backup_resumes_instead_of_crashing_every_rerun(split, tmp_path, capsys):
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        training.train(split, out, TINY, callbacks=[StopAfter(1)], verbose=0)
    second_half_zeros(out / "backup" / checkpoints.SLOTS[0])  # the state after epoch 2
    epochs = Record()
    metrics = training.train(split, out, TINY, callbacks=[epochs], verbose=0)
    assert epochs.epochs == [1, 2]  # from the state after epoch 1
    assert "training resumes after epoch 1" in capsys.readouterr().out
    assert history_epochs(out) == ["0", "1", "2"] and metrics["images"] == 20


def test_a_backup_that_does_not_load_starts_again_and_history_stays_true(split, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        training.train(split, out, TINY, callbacks=[StopAfter(0)], verbose=0)
    random_bytes(out / "backup" / checkpoints.SLOTS[1])
    epochs = Record()
    training.train(split, out, TINY, callbacks=[epochs], verbose=0)
    assert epochs.epochs == [0, 1, 2]
    assert history_epochs(out) == ["0", "1", "2"]  # one run's epochs, each once
    (aside,) = out.glob("set-aside-*")
    assert history_epochs(aside) == ["0"]
    assert (aside / "backup" / checkpoints.SLOTS[1]).exists()


class FullDisk:
    """A run folder that fills up: ``open(..., "w"/"a")`` inside it returns files whose
    ``write`` raises ``OSError(errno)`` once ``budget`` bytes have been written there.

    It stands in for a Google Drive that is full (``ENOSPC``) or whose mount fails (``EIO``,
    as in colabtools issue 1492). It differs: Drive's FUSE mount may accept the bytes into its
    local cache and fail later, at ``close``, or only on upload, where the process never hears
    of it (then the next runtime finds a damaged file, which the checks above catch); and
    TensorBoard's event files, written by TensorFlow's C++ code, are not covered here.
    """

    def __init__(self, folder, code=errno.ENOSPC, budget=None):
        self.folder, self.code, self.budget, self.written = str(folder), code, budget, 0

    def open(self, file, mode="r", *args, **kwargs):
        opened = self.real_open(file, mode, *args, **kwargs)
        inside = isinstance(file, str | os.PathLike) and os.fspath(file).startswith(self.folder)
        if inside and any(m in mode for m in "wax+"):
            return FillingFile(opened, self, os.fspath(file))
        return opened

    def write(self, file, data, name):
        if self.budget is not None and self.written + len(data) > self.budget:
            raise OSError(self.code, os.strerror(self.code), name)
        self.written += len(data)
        return file.write(data)

    def __enter__(self):
        self.real_open = builtins.open
        builtins.open = self.open
        return self

    def __exit__(self, *exc):
        builtins.open = self.real_open


class FillingFile:
    """A file opened on a ``FullDisk``: every ``write`` goes through the disk's budget."""

    def __init__(self, file, disk, name):
        self.file, self.disk, self.name = file, disk, name

    def write(self, data):
        return self.disk.write(self.file, data, self.name)

    def __getattr__(self, attribute):
        return getattr(self.file, attribute)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self.file.__exit__(*exc)


class FillUpAfter(keras.callbacks.Callback):
    """Leave ``margin`` bytes free on the disk once epoch ``epoch`` is saved."""

    def __init__(self, disk, epoch, margin):
        super().__init__()
        self.disk, self.epoch, self.margin = disk, epoch, margin

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            self.disk.budget = self.disk.written + self.margin


def test_a_disk_full_mid_run_is_one_error_that_loses_nothing_and_rerunning_resumes(split, tmp_path):
    out = tmp_path / "run"
    with FullDisk(out) as disk, pytest.raises(RuntimeError) as error:
        training.train(split, out, TINY, callbacks=[FillUpAfter(disk, 0, 200)], verbose=0)
    message = str(error.value)
    assert isinstance(error.value, training.RunError) and "\n" not in message
    assert "No space left on device" in message and "nothing finished was lost" in message
    assert "state after epoch 1" in message and "resume at epoch 2" in message
    # What was finished is whole: the state of epoch 1, the best network; no partial files.
    assert sorted(p.name for p in (out / "backup").iterdir()) == [checkpoints.SLOTS[1]]
    model = tiny_model(blocks=(1, 1))
    assert checkpoints.load_state(out / "backup" / checkpoints.SLOTS[1], model) == 1
    keras.models.load_model(out / "best.keras")
    assert not list(out.rglob(".*partial*"))
    epochs = Record()
    training.train(split, out, TINY, callbacks=[epochs], verbose=0)  # space freed: rerun
    assert epochs.epochs == [1, 2] and history_epochs(out) == ["0", "1", "2"]


class BackupWrites(keras.callbacks.Callback):
    """The bytes written into the backup folder by each epoch (``FullDisk`` counts them)."""

    def __init__(self, disk):
        super().__init__()
        self.disk, self.epochs = disk, []

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(self.disk.written - sum(self.epochs))


def test_an_epoch_writes_its_state_once_and_a_finished_run_keeps_one(split, tmp_path):
    out = tmp_path / "run"
    with FullDisk(out / "backup") as disk:  # no budget: it only counts
        writes = BackupWrites(disk)
        training.train(split, out, TINY, callbacks=[writes], verbose=0)
    (state,) = (out / "backup").iterdir()  # the finished run keeps the last state only
    assert checkpoints.saved_epoch(state) == TINY.epochs
    size = state.stat().st_size  # the same for every epoch's state
    for written in writes.epochs:  # the state once (zipfile rewrites each member's header),
        assert size <= written < 1.1 * size, writes.epochs  # not a copy of the old one too


def test_the_drive_benchmark_counts_what_each_epoch_writes(tmp_path):
    """``python -m benchmarks.drive``, on a tiny network: an epoch writes at least its state."""
    from benchmarks.drive import measure, report

    result = measure("float32", 2, tmp_path, blocks=(1,), growth_rate=4)
    kept = result["kept"]
    state = kept["backup/" + checkpoints.SLOTS[0]]
    assert [e["epoch"] for e in result["epochs"]] == [1, 2]
    for epoch in result["epochs"]:
        assert epoch["files_rewritten"]["backup/" + checkpoints.SLOTS[epoch["epoch"] % 2]] == state
        assert epoch["bytes_written"] >= sum(epoch["files_rewritten"].values())
        assert epoch["bytes_trashed"] == 0  # the replaced state was emptied first
    assert result["trashed_in_all"] == 0  # the older state deleted at the end too
    assert "kept after the finished run" in report(result)


def test_an_io_error_on_the_backup_is_one_error_line_from_the_command_line(split, tmp_path, capsys):
    out = tmp_path / "run"
    with FullDisk(out / "backup", code=errno.EIO, budget=0):
        arguments = ["--quick", "--epochs", "2", "--image-size", "32", "--blocks", "1,1"]
        code = main(["train", "--data", str(split), "--out", str(out), *arguments])
    assert code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: Writing to") and "Input/output error" in line
    assert "no epoch had finished yet" in line and "rerun" in line


# --- a resumed run is the same run -----------------------------------------------------------

RUN = textwrap.dedent(
    """
    import os, sys, warnings
    warnings.simplefilter("ignore")
    import keras
    from densenet_tutorial.config import run_config
    from densenet_tutorial.training import train

    data, out, augment, stop = sys.argv[1], sys.argv[2], sys.argv[3] == "True", sys.argv[4]

    class Disconnect(keras.callbacks.Callback):  # the process ends, as a runtime does
        def on_epoch_end(self, epoch, logs=None):
            if epoch == int(stop):
                os._exit(17)

    config = run_config(True, image_size=32, blocks=(1, 1), growth_rate=4, batch_size=16,
                        epochs=2, seed=5, deterministic=True, augment=augment)
    train(data, out, config, verbose=0, callbacks=[Disconnect()] if stop != "none" else [])
    """
)


def run_process(split, out, augment, stop="none"):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, "-c", RUN, str(split), str(out), str(augment), stop]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)


def final_state(out):
    (path,) = (out / "backup").iterdir()
    with np.load(path) as state:
        return {name: state[name] for name in state.files}


def history_without_time(out):
    rows = [row.split(",") for row in (out / "history.csv").read_text().splitlines()]
    keep = [i for i, name in enumerate(rows[0]) if name != "epoch_seconds"]
    return [[row[i] for i in keep] for row in rows]


@pytest.mark.parametrize("augment", [False, True], ids=["plain", "augmented"])
def test_a_resumed_run_is_the_run_that_was_never_interrupted(split, tmp_path, augment):
    """Two epochs in one process, against one epoch, the process ending (``os._exit``, as a
    recycled runtime), and a second process that resumes: the same weights, momentum, step
    count and seed states, and the same history (but for the wall time of each epoch)."""
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    done = run_process(split, straight, augment)
    assert done.returncode == 0, done.stderr[-3000:]
    cut = run_process(split, resumed, augment, stop="0")
    assert cut.returncode == 17, cut.stderr[-3000:]
    assert json.loads((resumed / "config.json").read_text())["settings"]["epochs"] == 2
    done = run_process(split, resumed, augment)
    assert done.returncode == 0, done.stderr[-3000:]
    one, other = final_state(straight), final_state(resumed)
    assert one.keys() == other.keys() and int(one["epoch"]) == 2
    np.testing.assert_array_equal(one.pop("names"), other.pop("names"))
    for name in one:  # every variable, the optimizer's step count and momentum included
        np.testing.assert_allclose(one[name], other[name], rtol=1e-6, atol=1e-7, err_msg=name)
    assert history_without_time(straight) == history_without_time(resumed)


# --- memory over several runs in one process -------------------------------------------------

MEMORY = textwrap.dedent(
    """
    import json, sys, warnings
    warnings.simplefilter("ignore")
    import psutil
    from densenet_tutorial import config, training

    config.QUICK_STEPS_PER_EPOCH = 2  # the cache still holds all training images
    ended = []
    for run in range(6):  # notebook 05's loop: 3 growth rates x 2 seeds
        settings = config.run_config(True, image_size=64, blocks=(1, 1), growth_rate=4,
                                     batch_size=32, epochs=1, seed=run)
        training.train(sys.argv[1], f"{sys.argv[2]}/run-{run}", settings, verbose=0)
        ended.append(psutil.Process().memory_info().rss / 2**20)
    print(json.dumps(ended))
    """
)


def test_train_calls_in_a_row_end_where_the_first_ended(split, tmp_path):
    """Six runs in one process: each ends within 10 % of the memory the first ended with.

    Measured here, resident memory after each run: 735, 747, 754, 757, 759, 760 MB; without
    ``release_memory`` (the training graph of every run stays alive) 744, 793, 806, 834, 839,
    828 MB, 12.8 % above the first at most.
    """
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-c", MEMORY, str(split), str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    ended = json.loads(done.stdout.strip().splitlines()[-1])
    assert max(ended) <= 1.10 * ended[0], ended
