"""What the set-up cell of every notebook calls: make this runtime ready to run the tutorial.

On Google Colab the set-up cell first clones the repository to ``/content``, calls
``check_runtime`` (a Colab TPU runtime stops there, with one line saying which runtime to
pick) and installs the package (the cell's text is written by ``scripts/sync_notebooks.py``
from ``densenet_tutorial.project``); then, on Colab and on your own machine alike, it calls
``setup()``, which

- chooses the *products folder*, where ``data/`` (the split's manifests, a few MB) and
  ``runs/`` (training runs) are kept, and works there. On Colab, with ``keep_on_drive``, that
  is a folder on Google Drive (``google.colab.drive.mount``, after one line saying why, since
  Colab then waits for the learner's permission); notebooks 01 and 02 need nothing from an
  earlier runtime and pass ``keep_on_drive=None``: no Drive, no dialog. A recycled runtime (idle
  timeout, the 12-hour cap, a lost GPU) loses its disk, Drive keeps the runs, and a run
  resumes in the next runtime. The photos themselves are not on Drive: on Colab kagglehub
  has the runtime mount them read-only under ``/kaggle/input/`` (or downloads them into its
  cache on the runtime's disk), again in every new runtime (``data.download``). Elsewhere
  the products folder is the project's root;
- reports the GPU, and stops a notebook that trains for real on a runtime without one
  (``require_gpu``): 40 epochs of DenseNet-169 on two CPU cores take about a day (the time
  plan measured 34 minutes per epoch on a 2-vCPU CPU with bfloat16) or longer.
"""

import importlib.util
import os
import sys
from pathlib import Path

from densenet_tutorial import hardware
from densenet_tutorial.errors import ProjectError, RunError
from densenet_tutorial.project import package_checkout, products_dir

COLAB_CONTENT = Path("/content")  # a Colab runtime's working folder, on its own disk
DRIVE_FOLDER = Path("MyDrive") / "densenet-tutorial"  # the products folder inside Drive

SWITCH_RUNTIME = "Runtime > Change runtime type > T4 GPU > Save, then Runtime > Run all"
NO_GPU_ADVICE = f"""\
No GPU found. That is fine with QUICK = True (generated images, small sizes, minutes on a CPU).
The real run (QUICK = False) trains DenseNet-169 on 25,000 images and needs a GPU:
  on Colab: {SWITCH_RUNTIME};
  on your own machine: set QUICK = True in the parameters cell."""
NO_GPU_STOP = (
    f"No GPU: this notebook's real run (QUICK = False) would train for days on a CPU. "
    f"On Colab: {SWITCH_RUNTIME}. Or set QUICK = True (minutes on a CPU), or, if you really "
    f"mean to train on this machine, REQUIRE_GPU = False."
)
COLAB_TPU_STOP = (  # googlecolab/backend-info: TensorFlow left pip-freeze.tpu.txt in March 2025
    f"This is a Colab TPU runtime: Colab's TPU image has no TensorFlow (it carries JAX), and "
    f"this tutorial trains with TensorFlow on a GPU. {SWITCH_RUNTIME}."
)
DRIVE_WHY = (
    "Mounting Google Drive (Colab asks for your permission once per runtime): data/ and runs/ "
    "are kept there, so that a trained run, and a run cut off mid-way, outlive this runtime."
)
WITHOUT_DRIVE = (
    "Products are kept on this runtime's disk: a runtime reset (idle timeout, the 12-hour "
    "cap) loses data/ and runs/, and training starts again from epoch 1. Set "
    "KEEP_ON_DRIVE = True to keep them on Google Drive."
)


def on_colab():
    """True inside a Google Colab kernel (which imports ``google.colab`` at start-up)."""
    return "google.colab" in sys.modules


def on_colab_tpu():
    """True on a Colab TPU runtime, told without TensorFlow (which that runtime lacks).

    Colab marks its TPU VMs with ``COLAB_TPU_1VM=1`` (its older TPU nodes with
    ``COLAB_TPU_ADDR``), and its TPU image holds ``libtpu``, the TPU runtime library, which the
    GPU image does not (googlecolab/backend-info, ``pip-freeze.tpu.txt`` and ``.gpu.txt``).
    """
    marked = os.environ.get("COLAB_TPU_1VM") == "1" or "COLAB_TPU_ADDR" in os.environ
    return on_colab() and (marked or importlib.util.find_spec("libtpu") is not None)


def check_runtime():
    """Stop, in one line, on a runtime that cannot run this tutorial: a Colab TPU runtime.

    The set-up cell calls it right after cloning the repository: before installing
    anything (TensorFlow from PyPI would be hundreds of MB) or downloading any photo.
    """
    show_project_errors_in_one_line()
    if on_colab_tpu():
        raise RunError(COLAB_TPU_STOP)


def products_folder(keep_on_drive=True):
    """Where ``data/`` and ``runs/`` live: on Google Drive (Colab), else the project root."""
    if not (on_colab() and keep_on_drive):
        return package_checkout() or products_dir()
    from google.colab import drive

    content = package_checkout().parent if package_checkout() else COLAB_CONTENT
    mount_point = content / "drive"
    print(DRIVE_WHY, flush=True)  # before the dialog, which Run all waits for
    drive.mount(str(mount_point))  # asks for permission once per runtime
    folder = mount_point / DRIVE_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def setup(keep_on_drive=True, require_gpu=False):
    """Work in the products folder, report the hardware; stop if a GPU is required and absent.

    The notebooks' ``DATA_DIR = "data"`` and ``RUNS_DIR = "runs"`` are relative to the
    products folder. ``keep_on_drive=None``: the notebook neither needs an earlier runtime's
    products nor keeps any for a later one (01, 02): no Drive, and nothing to warn about.
    """
    show_project_errors_in_one_line()
    folder = products_folder(keep_on_drive)
    os.chdir(folder)
    print(f"Products (data/, runs/) are kept in {folder}")
    if on_colab() and keep_on_drive is False:
        print(WITHOUT_DRIVE)
    accelerators = [gpu["name"] for gpu in hardware.gpus()]
    if accelerators:
        print(f"GPU: {', '.join(accelerators)}")
    elif require_gpu:
        raise RunError(NO_GPU_STOP)
    else:
        print(NO_GPU_ADVICE)


def show_project_errors_in_one_line():
    """In a notebook, show an error the learner can fix as one line, not a traceback.

    The cell still fails, so "Run all" (and papermill) stops there; any other exception
    keeps its full traceback.
    """
    if "IPython" not in sys.modules:  # a plain Python script: nothing to do
        return
    shell = sys.modules["IPython"].get_ipython()
    if shell is not None:
        shell.set_custom_exc((ProjectError,), print_one_line)


def print_one_line(shell, kind, error, traceback, tb_offset=None):
    """IPython's handler for a ``ProjectError``: its message, after ``error:``, on stderr."""
    print(f"error: {error}", file=sys.stderr)
