"""The walkthrough's plumbing: parameters as Colab forms papermill reads, run folders that name
every setting, a run remembered once trained, the photo parameter, the bare versions of
``train`` and Grad-CAM, and the facts the notebooks state.

The Colab form syntax (``x = 1  # @param {type:"integer"}``, ``# @param ["a", "b"]
{allow-input: true}``, ``# @title``) is that of Colab's own "Forms" example notebook; Colab
itself cannot run here, so the tests check what papermill reads from the same cells.
"""

import ast
import json
import logging
import sys
from pathlib import Path

import keras
import nbformat
import numpy as np
import pytest

from densenet_tutorial import config, notebooks, training
from densenet_tutorial.config import run_config
from densenet_tutorial.data import read_split
from densenet_tutorial.errors import MissingInputError, SettingError
from densenet_tutorial.model import build_densenet, composite_function, dense_layer

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
TINY = {"blocks": (1, 1), "growth_rate": 4, "image_size": 32, "batch_size": 16, "epochs": 2}


def load_sync_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("sync", ROOT / "scripts" / "sync_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parameters_cell(path):
    notebook = nbformat.read(path, as_version=4)
    (cell,) = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    return cell


# --- parameters: Colab forms that papermill reads -------------------------------------------


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_parameters_are_a_colab_form_that_papermill_reads_whole(path, caplog):
    """Every assignment is a form field with a help, and papermill lists every parameter with
    that help and logs no "Unable to parse line" (an '=' in a comment used to hide one)."""
    import papermill

    cell = parameters_cell(path)
    assert cell.source.startswith("# @title Parameters")
    names = [node.targets[0].id for node in ast.parse(cell.source).body]
    with caplog.at_level(logging.WARNING, logger="papermill"):
        inferred = papermill.inspect_notebook(str(path))
    assert not [record for record in caplog.records if record.name.startswith("papermill")]
    assert list(inferred) == names
    for line in cell.source.splitlines()[1:]:
        name, comment = line.split(" = ")[0], line.split("  # ", 1)[1]
        assert comment.startswith("@param ") and inferred[name]["help"] == comment
        help_text = comment.split("} ", 1)[-1] if "}" in comment else comment.split("] ", 1)[-1]
        assert len(help_text.split()) >= 3, line  # words a learner reads, not only the options


def test_papermill_help_notebook_lists_every_parameter(tmp_path):
    import subprocess

    path = ROOT / "notebooks" / "03_train.ipynb"
    shown = subprocess.run(
        [sys.executable, "-m", "papermill", "--help-notebook", str(path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    for node in ast.parse(parameters_cell(path).source).body:
        assert f"  {node.targets[0].id}: " in shown.stdout
    assert "where the run folder is written" in shown.stdout
    assert "Unable to parse" not in shown.stdout + shown.stderr


def test_sync_refuses_a_parameters_line_papermill_cannot_read():
    sync = load_sync_script()
    good = '# @title Parameters\nQUICK = False  # @param {type:"boolean"} True: a small run'
    assert sync.form_problems(good) == []
    assert (
        sync.form_problems('# @title P\nX = 1  # @param ["a", "b"] {allow-input: true} an x') == []
    )
    bad = {
        '# @title P\nGPU = True  # @param {type:"boolean"} stop (QUICK = False) runs': "'='",
        "# @title P\nK = 32  # k, the growth rate": "is not",
        '# @title P\nK = 32  # @param {type:"integer"}': "no help",
        'K = 32  # @param {type:"integer"} the growth rate': "@title",
    }
    for source, reason in bad.items():
        problems = sync.form_problems(source)
        assert len(problems) == 1 and reason in problems[0], (source, problems)


# --- run folders and the last run -----------------------------------------------------------


def test_a_run_folder_names_every_setting_train_compares(tmp_path):
    """check_run_folder refuses a folder whose config differs in any setting: so every
    recorded setting is either fixed by the recipe or part of the folder's name."""
    settings = training.recorded_settings(tmp_path, run_config(True, **TINY))
    recipe_constants = set(training.RECIPE) | {"steps_per_epoch_cap"}
    assert set(settings) - recipe_constants == set(config.NAMES) | {"split_dir"}

    base = notebooks.run_folder("runs", run_config(**{**TINY, "blocks": (6, 12, 32, 32)}))
    assert base.name == "densenet169-k4-32px-b16-2ep"  # the names of older runs are kept
    variations = {
        "augment": False, "seed": 1, "learning_rate": 0.01, "pretrained": "imagenet",
        "compression": 1.0, "memory_efficient": True, "precision": "float32",
        "deterministic": True,
    }  # fmt: skip
    named = set(config.RUN_SETTINGS) | {"quick"}
    assert set(variations) == set(config.NAMES) - named  # a new setting needs a word here too
    names = {
        notebooks.run_folder("runs", run_config(True, **TINY, **{k: v})).name
        for k, v in variations.items()
    }
    assert len(names) == len(variations)
    name = notebooks.run_folder("runs", run_config(True, **TINY, augment=False, seed=1)).name
    assert name == "densenet7-k4-32px-b16-2ep-seed1-no-augment-quick"
    fine_tuned = run_config(**TINY, learning_rate=0.01, pretrained="imagenet")
    assert notebooks.run_folder("r", fine_tuned).name.endswith("-lr0.01-imagenet")
    tiny = run_config(**TINY)
    other_data = notebooks.run_folder("r", tiny, data=tmp_path / "cats-vs-dogs-10pct")
    assert other_data.name.endswith("-data-cats-vs-dogs-10pct")
    same_data = notebooks.run_folder("r", tiny, data=tmp_path / "cats-vs-dogs" / "splits")
    assert same_data.name == notebooks.run_folder("r", tiny).name
    with pytest.raises(SettingError, match="augmnt"):
        run_config(True, augmnt=False)


def test_settings_carry_options_to_the_notebooks_that_follow(tmp_path):
    settings = run_config(True, growth_rate=8, augment=False)
    notebooks.remember_run(tmp_path, settings)
    followed = notebooks.trained_settings(tmp_path, True)
    assert followed == settings
    assert notebooks.run_folder(tmp_path, followed).name.endswith("-no-augment-quick")
    assert notebooks.trained_settings(tmp_path, True, growth_rate=12).growth_rate == 12
    assert notebooks.trained_settings(tmp_path, True, growth_rate=None) == settings  # 04's None
    # A record of the earlier format (no "quick", blocks as a list) is followed too.
    earlier = {"blocks": [2, 4, 4, 2], "growth_rate": 8, "image_size": 64, "batch_size": 32,
               "epochs": 5, "augment": False}  # fmt: skip
    notebooks.last_run_file(tmp_path, True).write_text(json.dumps(earlier))
    assert notebooks.trained_settings(tmp_path, True) == settings


def test_a_missing_real_model_names_notebook_03_and_its_options(tmp_path):
    settings = run_config(growth_rate=16, augment=False)
    with pytest.raises(MissingInputError) as error:
        notebooks.find_model(tmp_path / "run", tmp_path, settings)
    message = str(error.value)
    assert "03_train.ipynb" in message and "GROWTH_RATE = 16" in message
    assert "augment=False" in message


# --- the photo, a subset, TensorBoard -------------------------------------------------------


def test_the_photo_is_the_shipped_cat_from_any_folder_and_upload_is_for_colab(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # as on Colab, where the working folder is on Drive
    photo = notebooks.photo_path(notebooks.SHIPPED_PHOTO)
    assert photo.is_file() and photo.name == "chelsea.png"
    assert notebooks.photo_path() == photo  # not on Colab: no upload
    with pytest.raises(SettingError, match="upload"):
        notebooks.photo_path("upload")
    assert notebooks.photo_path(str(photo)) == photo


def test_upload_on_colab_and_the_cat_when_nothing_is_uploaded(
    colab_kernel, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    upload = tmp_path / "mine.png"
    upload.write_bytes((ROOT / "images" / "chelsea.png").read_bytes()[:100])
    monkeypatch.setenv("FAKE_COLAB_UPLOAD", str(upload))
    assert notebooks.photo_path("upload").read_bytes() == upload.read_bytes()
    assert notebooks.photo_path("chelsea.png").name == "chelsea.png"  # the default: no dialog
    monkeypatch.setenv("FAKE_COLAB_UPLOAD", "")
    assert notebooks.photo_path("upload").name == "chelsea.png"
    assert "No file uploaded" in capsys.readouterr().out


def test_training_subset_keeps_validation_and_test_and_a_share_of_each_class(synthetic_split):
    from densenet_tutorial.data import read_split

    folder = synthetic_split.parent
    subset = notebooks.training_subset(folder, 0.25)
    assert subset.name == f"{folder.name}-25pct"
    for part in ("val", "test"):
        assert read_split(subset / "splits", part) == read_split(synthetic_split, part)
    _, train = read_split(synthetic_split, "train")
    _, fewer = read_split(subset / "splits", "train")
    assert set(fewer) < set(train)
    for label in ("cat", "dog"):
        total = sum(lab == label for _, lab in train)
        assert sum(lab == label for _, lab in fewer) == int(np.ceil(0.25 * total))
    again = (subset / "splits" / "train.csv").read_bytes()
    assert notebooks.training_subset(folder, 0.25) == subset
    assert (subset / "splits" / "train.csv").read_bytes() == again
    with pytest.raises(SettingError, match="fraction"):
        notebooks.training_subset(folder, 0)


def test_tensorboard_is_served_from_the_kernel_on_a_free_port(tmp_path):
    """show_tensorboard starts the server inside the calling process (a notebook's kernel), on
    a port the system picks: two calls, two ports, nothing fixed. It runs in a subprocess here,
    which stands in for the kernel, so that its server threads end with it, as with a kernel."""
    import subprocess
    import textwrap

    script = textwrap.dedent(f"""
        import json, urllib.request
        from densenet_tutorial.notebooks import show_tensorboard
        first, second = (show_tensorboard({str(tmp_path / "runs")!r}) for _ in range(2))
        with urllib.request.urlopen(first + "data/environment", timeout=60) as response:
            location = json.loads(response.read())["data_location"]
        print("RESULT", json.dumps([first, second, location]))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    first, second, location = json.loads(line[len("RESULT ") :])
    assert first != second and first.startswith("http://")
    assert location == str(tmp_path / "runs")


# --- the ideas before the plumbing ----------------------------------------------------------


def test_train_in_brief_trains_what_train_trains(synthetic_split, tmp_path):
    """The dozen lines of notebook 03 give train()'s history, epoch for epoch (same seed,
    same pieces; train() adds the precision, which is set to float32 here)."""
    from densenet_tutorial.evaluate import read_history
    from densenet_tutorial.walkthrough import train_in_brief

    settings = run_config(**TINY, precision="float32")
    training.train(synthetic_split, tmp_path / "run", settings, verbose=0)
    full = read_history(tmp_path / "run" / "history.csv")
    history, metrics = train_in_brief(synthetic_split, verbose=0, **TINY)
    for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(history[name], full[name], rtol=1e-4, atol=1e-6)
    right = metrics["accuracy"] * len(read_split(synthetic_split, "test")[1])
    assert right == pytest.approx(round(right), abs=1e-3)  # a number of test images, over all


def test_plain_grad_cam_is_grad_cam():
    from densenet_tutorial.visualize import grad_cam
    from densenet_tutorial.walkthrough import plain_grad_cam

    keras.utils.set_random_seed(3)
    model = build_densenet(blocks=(1, 2), growth_rate=4, input_shape=(32, 32, 3))
    images = np.random.default_rng(0).uniform(0, 255, (5, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(plain_grad_cam(model, images), grad_cam(model, images), atol=1e-5)
    earlier = "conv2_block1_concat"
    np.testing.assert_allclose(
        plain_grad_cam(model, images, earlier), grad_cam(model, images, earlier), atol=1e-5
    )


# --- facts the notebooks state --------------------------------------------------------------


def test_the_bottleneck_saves_weights_only_beyond_7_2k_channels():
    """Notebook 02: 4k*c + 36k^2 weights with the bottleneck, 9k*c without, counted by Keras."""

    def conv_weights(c, k, bottleneck):
        x = keras.Input((8, 8, c))
        y = dense_layer(x, k, 4, "l") if bottleneck else composite_function(x, k, 3, "b", "r", "c")
        bn = 4 * c + (16 * k if bottleneck else 0)
        return keras.Model(x, y).count_params() - bn

    k = 32
    assert conv_weights(64, k, True) == 45_056 and conv_weights(64, k, False) == 18_432
    last_of_block_3 = 256 + 31 * k
    saves = 1 - conv_weights(last_of_block_3, k, True) / conv_weights(last_of_block_3, k, False)
    assert round(saves, 2) == 0.45
    assert conv_weights(230, k, True) > conv_weights(230, k, False)  # below 7.2k = 230.4
    assert conv_weights(231, k, True) < conv_weights(231, k, False)


def test_warm_up_starts_from_zero():
    """Notebook 03: the warm-up of Bag of Tricks, from 0 (not from a small-batch rate)."""
    schedule = training.learning_rate_schedule(32, steps_per_epoch=100, epochs=40)
    assert float(schedule(0)) == 0.0
    assert float(schedule(200)) == pytest.approx(0.1 * 32 / 256)
    one_step = training.learning_rate_schedule(32, steps_per_epoch=1, epochs=1)  # a tiny subset
    assert float(one_step(1)) == pytest.approx(0.1 * 32 / 256)
