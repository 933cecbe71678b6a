"""Every file that ``prepare`` and ``train`` keep, damaged, then the same command again.

A file on Google Drive can arrive short or garbled (a sync cut off). Each file is overwritten
in two ways a new user would try, a few bytes of text and bytes that are not UTF-8, and the
real command (``python -m densenet_tutorial prepare`` or ``train --quick``, called in this
process) runs again on a tiny generated data set: a cache is built again; a file that cannot
be built again is moved to a ``set-aside-TIME/`` folder (never deleted) and one ``error:``
line says what to do; no traceback, and no finished epoch is trained again.
"""

import shutil
import warnings

import pytest
from helpers import StopAfter

from densenet_tutorial import checkpoints, notebooks, training
from densenet_tutorial.cli import main
from densenet_tutorial.config import RunConfig, run_config
from densenet_tutorial.data import synthesize
from densenet_tutorial.data.files import read_csv, read_json
from densenet_tutorial.data.verify import CACHE_FIELDS
from densenet_tutorial.evaluate import read_history

DAMAGES = {"text": b"a few words\n", "not UTF-8": b"\xff\xfe\x80 \xc3\x28 binary\x00\n"}
PREPARE = ["--val-per-class", "6", "--test-per-class", "6"]
TRAIN = ["--quick", "--epochs", "2", "--image-size", "32", "--blocks", "1,1", "--batch-size", "8"]
SETTINGS = run_config(True, epochs=2, image_size=32, blocks=(1, 1), batch_size=8)  # TRAIN


def prepare(base):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "fewer than 25,000 images"
        code = main(["prepare", "--source", str(base / "images"), "--out", str(base / "data"),
                     *PREPARE])  # fmt: skip
    return code


def train(base):
    return main(["train", "--data", str(base / "data"), "--out", str(base / "run"), *TRAIN])


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """Generated photos, their prepared split and a finished quick run of two epochs."""
    base = tmp_path_factory.mktemp("finished")
    synthesize(base / "images", per_class=20, size=(64, 48))
    assert prepare(base) == 0 and train(base) == 0
    return base


@pytest.fixture(scope="module")
def stopped(finished, tmp_path_factory):
    """The same run, stopped after its first epoch (a Colab disconnect)."""
    base = tmp_path_factory.mktemp("stopped")
    shutil.copytree(finished / "data", base / "data")
    with pytest.raises(KeyboardInterrupt):
        training.train(base / "data", base / "run", SETTINGS, callbacks=[StopAfter(0)], verbose=0)
    return base


def copy(base, tmp_path):
    """A copy of the folders in ``base``; the run's ``config.json`` names the copied split (a
    run records where its split is)."""
    for name in ("images", "data", "run"):
        if (base / name).exists():
            shutil.copytree(base / name, tmp_path / name, symlinks=True)
    config = tmp_path / "run" / "config.json"
    config.write_text(config.read_text().replace(str(base), str(tmp_path)))
    return tmp_path


def aside(folder, name):
    """The one copy of ``name`` in ``folder``'s ``set-aside-*`` folders."""
    (found,) = folder.glob(f"set-aside-*/{name}")
    return found


def state_epochs(run):
    return sorted(checkpoints.saved_epoch(path) for path in (run / "backup").glob("*.npz"))


REBUILT_BY_PREPARE = {
    "checked.csv": lambda path: read_csv(path, CACHE_FIELDS),
    "copies.json": lambda path: read_json(path, keys=("pairs",)),
}


@pytest.mark.parametrize("damage", DAMAGES)
@pytest.mark.parametrize("name", REBUILT_BY_PREPARE)
def test_prepare_builds_a_damaged_cache_again(finished, tmp_path, capsys, name, damage):
    base = copy(finished, tmp_path)
    split_before = (base / "data" / "splits" / "train.csv").read_bytes()
    (base / "data" / name).write_bytes(DAMAGES[damage])
    capsys.readouterr()
    assert prepare(base) == 0
    out = capsys.readouterr().out
    assert f"{base / 'data' / name} is damaged" in out and "built again" in out
    assert REBUILT_BY_PREPARE[name](base / "data" / name)
    assert aside(base / "data", name).read_bytes() == DAMAGES[damage]
    assert (base / "data" / "splits" / "train.csv").read_bytes() == split_before


@pytest.mark.parametrize("damage", DAMAGES)
@pytest.mark.parametrize("name", ["meta.json", "train.csv", "val.csv", "test.csv"])
def test_train_sets_a_damaged_split_aside_and_says_to_prepare_again(
    finished, tmp_path, capsys, name, damage
):
    base = copy(finished, tmp_path)
    (base / "data" / "splits" / name).write_bytes(DAMAGES[damage])
    capsys.readouterr()
    assert train(base) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: {base / 'data' / 'splits' / name} is damaged")
    assert "prepare" in line and "set-aside-" in line
    assert aside(base / "data", f"splits/{name}").read_bytes() == DAMAGES[damage]
    assert prepare(base) == 0 and train(base) == 0  # as the line says: prepare, then rerun
    assert state_epochs(base / "run") == [2]  # nothing trained again


def finished_run_outcomes(run, out):
    """What a rerun of the finished run must leave, whichever file was damaged."""
    assert state_epochs(run) == [2]  # no epoch trained again
    if (run / "history.csv").exists():  # not when it was the damaged file
        assert list(read_history(run / "history.csv")["epoch"]) == [0, 1]
    assert read_json(run / "metrics.json", keys=("accuracy",))
    assert checkpoints.whole_archive(run / "best.keras")
    assert "is damaged" in out


def damaged_and_trained_again(source, tmp_path, capsys, name, damage):
    """A copy of the folders in ``source`` whose run's ``name`` is damaged, after ``train``
    ran again (successfully): the copy and what the command printed."""
    base = copy(source, tmp_path)
    (base / "run" / name).write_bytes(DAMAGES[damage])
    capsys.readouterr()
    assert train(base) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return base, captured


RUN_FILES = {  # file: whether it is set aside (else it is rewritten in place)
    "config.json": True,
    "history.csv": True,
    "best.keras": True,
    "metrics.json": False,
}


@pytest.mark.parametrize("damage", DAMAGES)
@pytest.mark.parametrize("name", RUN_FILES)
def test_a_finished_run_with_a_damaged_file_evaluates_again(
    finished, tmp_path, capsys, name, damage
):
    base, captured = damaged_and_trained_again(finished, tmp_path, capsys, name, damage)
    run = base / "run"
    if RUN_FILES[name]:
        finished_run_outcomes(run, captured.out)
        assert aside(run, name).read_bytes() == DAMAGES[damage]
    else:
        assert read_json(run / name, keys=("accuracy",))  # written again
    if name == "config.json":
        assert read_json(run / name, keys=("settings",))
        assert train(base) == 0  # and the rewritten one is accepted
    if name == "best.keras":
        assert "network after its last epoch (2)" in captured.out


@pytest.mark.parametrize("damage", DAMAGES)
@pytest.mark.parametrize("name", ["history.csv", "best.keras"])
def test_a_stopped_run_with_a_damaged_file_resumes_after_its_last_epoch(
    stopped, tmp_path, capsys, name, damage
):
    base, captured = damaged_and_trained_again(stopped, tmp_path, capsys, name, damage)
    run, out = base / "run", captured.out
    assert f"{run / name} is damaged" in out and "training resumes after epoch 1" in out
    assert aside(run, name).read_bytes() == DAMAGES[damage]
    assert state_epochs(run) == [2]
    assert checkpoints.whole_archive(run / "best.keras")  # epoch 2's, a new best
    epochs = list(read_history(run / "history.csv")["epoch"])
    assert epochs == ([1] if name == "history.csv" else [0, 1])  # only epoch 2 ran again


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_record_of_the_last_run_is_set_aside(tmp_path, capsys, damage):
    notebooks.remember_run(tmp_path, run_config(growth_rate=12))
    assert notebooks.trained_settings(tmp_path, False).growth_rate == 12
    record = notebooks.last_run_file(tmp_path, False)
    record.write_bytes(DAMAGES[damage])
    settings = notebooks.trained_settings(tmp_path, False)
    assert settings.growth_rate == RunConfig().growth_rate  # the recipe's
    assert "is damaged" in capsys.readouterr().out
    assert aside(tmp_path, record.name).read_bytes() == DAMAGES[damage]
    notebooks.remember_run(tmp_path, run_config(growth_rate=12))  # 03 records it again
    assert notebooks.trained_settings(tmp_path, False).growth_rate == 12


def test_a_finished_run_whose_best_network_is_gone_saves_its_last_one(finished, tmp_path, capsys):
    base = copy(finished, tmp_path)
    (base / "run" / "best.keras").unlink()  # as a deletion, or a cut between two renames, leaves it
    capsys.readouterr()
    assert train(base) == 0
    out = capsys.readouterr().out
    assert "best.keras is missing" in out and "network after its last epoch (2)" in out
    assert checkpoints.whole_archive(base / "run" / "best.keras") and state_epochs(
        base / "run"
    ) == [2]
