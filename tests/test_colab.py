"""A Colab rehearsal: notebooks opened alone in fresh runtimes, a run that survives a reset.

Colab cannot run here, so the tests build what a Colab user meets:

- a *runtime* is a fresh copy of the repository (as the set-up cell's clone leaves it, so
  with empty ``data/`` and ``runs/``) under its own ``content/`` folder, with its own
  kagglehub cache holding the images (the stand-in for the download) and its own home;
- ``google.colab`` is the stand-in in ``tests/colab_stub``, imported when the kernel starts,
  as Colab does; its ``drive.mount`` links the mount point to one folder that outlives the
  runtimes, as Google Drive does;
- the notebooks run with papermill, ``QUICK = False`` (the real code path: kagglehub,
  checking, splitting) on a tiny network, ``REQUIRE_GPU = False`` as this machine has none.

Runtime A prepares the data (01) and starts training (03), and is recycled after the second
epoch, before Drive has stored all of the newest training state (its second half is zeros, as
an unsynced write on a network mount can leave it); runtime B, fresh, runs 03 alone and
resumes from Drive, from the state before; runtime C runs 04 alone and finds the model on
Drive.
"""

import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from helpers import COLAB_STUB, second_half_zeros

from densenet_tutorial import checkpoints, colab
from densenet_tutorial.data import DEFAULT_HANDLE, synthesize
from densenet_tutorial.project import REPOSITORY

ROOT = Path(__file__).resolve().parent.parent
TINY = {
    "QUICK": False,
    "REQUIRE_GPU": False,
    "BLOCKS": [1, 1, 1, 1],
    "GROWTH_RATE": 4,
    "IMAGE_SIZE": 32,
    "EPOCHS": 3,
    "BATCH_SIZE": 16,
}
IMAGES_PER_CLASS = 50


def tracked_files():
    listed = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    return [path for path in listed if (ROOT / path).is_file()]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """What outlives the runtimes: Google Drive, the IPython start-up file, the images."""
    world = tmp_path_factory.mktemp("colab")
    startup = world / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-colab.py").write_text("import google.colab  # as a Colab kernel does\n")
    owner_slug, version = DEFAULT_HANDLE.split("/versions/")
    cache = world / "kagglehub" / "datasets" / owner_slug
    synthesize(cache / "versions" / version, IMAGES_PER_CLASS, size=(96, 72))
    (cache / f"{version}.complete").touch()
    (world / "drive").mkdir()
    return world


def fresh_runtime(world, name):
    """A new "Colab runtime": its own disk with the cloned repository and kagglehub cache."""
    content = world / name / "content"
    checkout = content / REPOSITORY.split("/")[-1]
    for path in tracked_files():
        (checkout / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / path, checkout / path)
    for path in (checkout / "notebooks").glob("*.ipynb"):
        notebook = nbformat.read(path, as_version=4)
        for cell in notebook.cells:
            cell.source = cell.source.replace('Path("/content")', f'Path("{content}")')
        nbformat.write(notebook, path)
    shutil.copytree(world / "kagglehub", world / name / "kagglehub")
    env = {
        **os.environ,
        "PYTHONPATH": str(COLAB_STUB),
        "IPYTHONDIR": str(world / "ipython"),
        "KAGGLEHUB_CACHE": str(world / name / "kagglehub"),
        "FAKE_COLAB_DRIVE": str(world / "drive"),
        "HOME": str(world / name / "home"),
    }
    return checkout, env


def start_notebook(checkout, env, name, parameters):
    """Start papermill on ``notebooks/NAME`` of ``checkout``; returns (process, executed copy)."""
    executed = checkout.parent / name
    command = [
        sys.executable, "-m", "papermill", str(checkout / "notebooks" / name), str(executed),
        "-y", json.dumps(parameters), "--cwd", str(checkout.parent), "-k", "python3",
        "--no-progress-bar",
    ]  # fmt: skip
    with open(executed.with_suffix(".log"), "w") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    return process, executed


def run_notebook(checkout, env, name, parameters):
    process, executed = start_notebook(checkout, env, name, parameters)
    process.wait(timeout=600)
    return process.returncode, executed.with_suffix(".log").read_text(), executed


def outputs(executed):
    """All text a notebook printed, cell by cell."""
    notebook = nbformat.read(executed, as_version=4)
    texts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            texts.append(output.get("text", "") + "\n".join(output.get("traceback", [])))
            texts.append(str(output.get("data", {}).get("text/plain", "")))
    return "\n".join(texts)


def recycle(process):
    """Kill papermill and its kernel (jupyter starts kernels in a session of their own)."""
    import psutil

    papermill = psutil.Process(process.pid)
    for child in papermill.children(recursive=True):
        child.kill()
    papermill.kill()
    process.wait()


def drive_runs(world):
    return world / "drive" / "MyDrive" / "densenet-tutorial" / "runs"


def backup_epoch(run):
    """The finished epochs of the newest training state in the run's backup (the next epoch,
    0-based), or None before the first is saved."""
    epochs = []
    for name in checkpoints.SLOTS:
        try:
            epochs.append(checkpoints.saved_epoch(run / "backup" / name))
        except checkpoints.UnusableState:  # not there yet
            continue
    return max(epochs, default=None)


def history_epochs(run):
    with open(run / "history.csv", newline="") as file:
        return [int(row["epoch"]) for row in csv.DictReader(file)]


@pytest.fixture(scope="module")
def runtime_a(world):
    """Runtime A: notebook 01 looks at the data (on the runtime's disk: it mounts no Drive), 03
    prepares the split on Drive, trains, and the runtime dies after epoch 2, before Drive has
    the whole of that epoch's state."""
    checkout, env = fresh_runtime(world, "runtime-a")
    start = time.perf_counter()
    code, log, _ = run_notebook(checkout, env, "01_data.ipynb", TINY)
    assert code == 0, log[-3000:]
    seconds_01 = time.perf_counter() - start
    process, _ = start_notebook(checkout, env, "03_train.ipynb", TINY)
    deadline = time.monotonic() + 600
    runs = drive_runs(world)
    while time.monotonic() < deadline and process.poll() is None:
        finished = [backup_epoch(b.parent) for b in runs.glob("*/backup")]
        if any(epoch is not None and epoch >= 2 for epoch in finished):
            break
        time.sleep(0.05)
    recycle(process)

    (run,) = [backup.parent for backup in runs.glob("*/backup")]
    shutil.rmtree(world / "runtime-a")  # its disk goes with it: checkout, kagglehub cache
    epoch = backup_epoch(run)
    newest = run / "backup" / checkpoints.SLOTS[epoch % 2]
    second_half_zeros(newest)  # Drive had not stored the second half of it
    return {"run": run, "epoch": epoch, "seconds_01": seconds_01}


def test_runtime_a_prepares_the_data_on_drive_and_is_cut_off_mid_run(world, runtime_a):
    drive = world / "drive" / "MyDrive" / "densenet-tutorial"
    meta = json.loads((drive / "data" / "cats-vs-dogs" / "splits" / "meta.json").read_text())
    assert meta["handle"] == DEFAULT_HANDLE
    assert meta["source_root"].startswith(str(world / "runtime-a" / "kagglehub"))
    assert runtime_a["epoch"] is not None and 1 <= runtime_a["epoch"] < TINY["EPOCHS"]
    assert not (runtime_a["run"] / "metrics.json").exists()  # the run did not finish


def test_runtime_b_runs_03_alone_and_resumes_from_drive(world, runtime_a):
    checkout, env = fresh_runtime(world, "runtime-b")
    code, log, executed = run_notebook(checkout, env, "03_train.ipynb", TINY)
    assert code == 0, log[-3000:]
    run = runtime_a["run"]
    assert sorted(set(history_epochs(run))) == list(range(TINY["EPOCHS"]))
    # It resumes after the last epoch whose backup survived (the one before, if the runtime
    # died while writing it), never from the first epoch.
    started = int(outputs(executed).split("Epoch ")[1].split("/")[0])
    assert 2 <= started <= runtime_a["epoch"] + 1
    assert started == runtime_a["epoch"]  # the newest state was damaged: the one before it
    assert f"training resumes after epoch {started - 1}" in outputs(executed)
    (aside,) = run.glob("set-aside-*")  # the damaged state, kept
    assert (aside / "backup" / checkpoints.SLOTS[runtime_a["epoch"] % 2]).exists()
    assert json.loads((run / "metrics.json").read_text())["images"] > 0
    # The images were fetched again into this runtime's kagglehub cache.
    meta = json.loads(
        (world / "drive/MyDrive/densenet-tutorial/data/cats-vs-dogs/splits/meta.json").read_text()
    )
    assert meta["source_root"].startswith(str(world / "runtime-b" / "kagglehub"))


def test_runtime_c_runs_04_alone_and_finds_the_model_on_drive(world, runtime_a):
    assert (runtime_a["run"] / "best.keras").exists() or pytest.skip("runtime B did not run")
    checkout, env = fresh_runtime(world, "runtime-c")
    code, log, executed = run_notebook(checkout, env, "04_feature_maps_and_gradcam.ipynb", TINY)
    assert code == 0, log[-3000:]
    assert str(runtime_a["run"].name) in outputs(executed)


def test_a_training_notebook_without_gpu_stops_before_downloading(world):
    checkout, env = fresh_runtime(world, "runtime-no-gpu")
    code, log, executed = run_notebook(
        checkout, env, "03_train.ipynb", {**TINY, "REQUIRE_GPU": True}
    )
    assert code != 0
    text = outputs(executed)
    assert "error: No GPU:" in text and "REQUIRE_GPU = False" in text
    assert "Traceback" not in text
    cells = [c for c in nbformat.read(executed, as_version=4).cells if c.cell_type == "code"]
    setup = next(i for i, c in enumerate(cells) if "setup" in c.metadata.get("tags", []))
    assert all(c.execution_count is None for c in cells[setup + 1 :])  # nothing downloaded


def test_colab_set_up_cell_clones_installs_and_mounts_drive(tmp_path):
    """The Colab branch of the set-up cell, against a local clone instead of GitHub."""
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", origin], check=True)
    subprocess.run(["git", "-C", ROOT, "push", "-q", origin, "HEAD:refs/heads/main"], check=True)
    notebook = nbformat.read(ROOT / "notebooks" / "03_train.ipynb", 4)  # one that mounts Drive
    (cell,) = [c for c in notebook.cells if "setup" in c.metadata.get("tags", [])]
    content = tmp_path / "content"
    source = cell.source.replace('Path("/content")', f'Path("{content}")').replace(
        'f"https://github.com/{REPOSITORY}"', repr(f"file://{origin}")
    )
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    site = next(venv.glob("lib/python*/site-packages"))
    ours = [p for p in sys.path if p.endswith("site-packages")]
    (site / "test-deps.pth").write_text("\n".join(ours) + "\n")  # the test's dependencies
    script = tmp_path / "colab_kernel.py"
    script.write_text(
        "import google.colab\nKEEP_ON_DRIVE, REQUIRE_GPU, QUICK = True, False, False\n"
        + source
        + "\n"
        "import densenet_tutorial\nprint('imported from', densenet_tutorial.__file__)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(COLAB_STUB), "FAKE_COLAB_DRIVE": str(tmp_path / "drive")}
    done = subprocess.run(
        [venv / "bin" / "python", script], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    checkout = content / REPOSITORY.split("/")[-1]
    assert (checkout / ".git").is_dir() and (checkout / "notebooks").is_dir()
    assert f"imported from {checkout / 'densenet_tutorial' / '__init__.py'}" in done.stdout
    shown = subprocess.run(
        [venv / "bin" / "python", "-m", "pip", "show", "-f", "densenet-tutorial"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "Editable project location: " + str(checkout) in shown
    assert (tmp_path / "drive" / "MyDrive" / "densenet-tutorial").is_dir()
    assert "Products (data/, runs/) are kept in " + str(content / "drive") in done.stdout
    assert done.stdout.index(colab.DRIVE_WHY) < done.stdout.index("Products (data/, runs/)")


def test_without_drive_the_notebook_says_a_reset_loses_the_run(
    colab_kernel, monkeypatch, tmp_path, capsys
):
    monkeypatch.chdir(tmp_path)
    colab.setup(keep_on_drive=False)
    assert Path.cwd() == ROOT
    assert "a runtime reset" in capsys.readouterr().out
