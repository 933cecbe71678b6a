"""The runtime: a Colab TPU stops before anything is installed; memory is measured where it lives.

Colab's TPU image has no TensorFlow (googlecolab/backend-info, ``pip-freeze.tpu.txt``), so the
tutorial cannot train there: the set-up cell stops right after cloning, with one line. The
stand-in for that runtime is a Jupyter kernel that imports ``tests/colab_stub``'s
``google.colab`` at start-up, with ``COLAB_TPU_1VM=1`` as Colab sets it on its TPU VMs; where it
differs from the real one: TensorFlow is installed here, and there is no TPU.
"""

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from helpers import COLAB_STUB

from densenet_tutorial import colab, costs, hardware
from densenet_tutorial.project import REPOSITORY

ROOT = Path(__file__).resolve().parent.parent
INSTALL = '[sys.executable, "-m", "pip", "install", "-q", "-e", checkout]'


@pytest.fixture
def on_colab(colab_kernel, monkeypatch):
    for name in ("COLAB_TPU_1VM", "COLAB_TPU_ADDR"):
        monkeypatch.delenv(name, raising=False)


def test_a_colab_tpu_runtime_is_told_without_tensorflow(on_colab, monkeypatch):
    assert not colab.on_colab_tpu()  # a GPU or CPU runtime (no libtpu here)
    monkeypatch.setenv("COLAB_TPU_1VM", "1")
    assert colab.on_colab_tpu()
    with pytest.raises(RuntimeError, match=r"Colab TPU runtime.*T4 GPU"):
        colab.check_runtime()
    monkeypatch.delenv("COLAB_TPU_1VM")
    real = colab.importlib.util.find_spec
    monkeypatch.setattr(
        colab.importlib.util, "find_spec", lambda name: name == "libtpu" or real(name)
    )
    assert colab.on_colab_tpu()  # the TPU image's libtpu, whatever the variables say
    del sys.modules["google.colab"]  # as outside Colab (monkeypatch would put it back after
    # colab_kernel removed it, and every later test on this worker would think it ran on Colab)
    assert not colab.on_colab_tpu()  # not Colab: nothing to stop


def test_a_notebook_on_a_colab_tpu_stops_after_cloning_before_installing(tmp_path):
    """Notebook 01 (which downloads the photos next) on a "TPU runtime": one line, and nothing
    after the clone ran, neither the install nor any later cell."""
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", origin], check=True)
    subprocess.run(["git", "-C", ROOT, "push", "-q", origin, "HEAD:refs/heads/main"], check=True)
    notebook = nbformat.read(ROOT / "notebooks" / "01_data.ipynb", as_version=4)
    (setup,) = [c for c in notebook.cells if "setup" in c.metadata.get("tags", [])]
    content, installed = tmp_path / "content", tmp_path / "installed"
    assert INSTALL in setup.source
    setup.source = (
        setup.source.replace('Path("/content")', f'Path("{content}")')
        .replace('f"https://github.com/{REPOSITORY}"', repr(f"file://{origin}"))
        .replace(INSTALL, f'[sys.executable, "-c", "open({str(installed)!r}, \\"w\\")"]')
    )
    path = tmp_path / "01_data.ipynb"
    nbformat.write(notebook, path)
    startup = tmp_path / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-colab.py").write_text("import google.colab  # as a Colab kernel does\n")
    env = {**os.environ, "PYTHONPATH": str(COLAB_STUB), "IPYTHONDIR": str(tmp_path / "ipython"),
           "COLAB_TPU_1VM": "1", "FAKE_COLAB_DRIVE": str(tmp_path / "drive")}  # fmt: skip
    executed = tmp_path / "executed.ipynb"
    done = subprocess.run(
        [sys.executable, "-m", "papermill", path, executed, "-k", "python3", "--no-progress-bar",
         "--cwd", tmp_path],  # fmt: skip
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode != 0
    cells = [c for c in nbformat.read(executed, as_version=4).cells if c.cell_type == "code"]
    index = next(i for i, c in enumerate(cells) if "setup" in c.metadata.get("tags", []))
    shown = "".join(o.get("text", "") for o in cells[index].outputs)
    assert "error: This is a Colab TPU runtime" in shown and "T4 GPU" in shown
    assert "Traceback" not in shown
    assert (content / REPOSITORY.split("/")[-1] / "notebooks").is_dir()  # cloned, then stopped
    assert not installed.exists()  # never installed
    assert all(c.execution_count is None for c in cells[index + 1 :])  # nothing downloaded


def test_measuring_processes_may_share_the_gpu(monkeypatch, tmp_path):
    """``measure_in_fresh_process`` starts its worker with GPU memory growth on."""
    monkeypatch.delenv("TF_FORCE_GPU_ALLOW_GROWTH", raising=False)
    (tmp_path / "probe.py").write_text(
        "import os\n\ndef environment():\n"
        "    return {'growth': os.environ.get('TF_FORCE_GPU_ALLOW_GROWTH')}\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    assert costs.measure_in_fresh_process("probe:environment")["growth"] == "true"


def test_memory_is_the_process_peak_on_a_cpu_and_resets():
    import numpy as np
    import tensorflow as tf

    if tf.config.list_logical_devices("GPU"):
        pytest.skip("this machine has a GPU: its memory is the GPU's")
    assert hardware.memory_device() is None
    assert hardware.peak_memory_mb() == hardware.peak_rss_mb() > 0
    if not hardware.reset_peak_memory():  # from here on, the peak of this test alone
        pytest.skip("this machine refuses resetting the peak (/proc/self/clear_refs)")
    before = hardware.peak_memory_mb()
    block = np.ones(50 * 2**20, np.float32)  # 200 MiB, written
    high = hardware.peak_memory_mb()
    assert high >= before + 150
    del block
    assert hardware.reset_peak_memory()
    assert hardware.peak_memory_mb() < high - 150
