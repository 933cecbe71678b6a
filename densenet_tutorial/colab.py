"""What the first code cell of every notebook calls: make the kernel ready to run the tutorial.

On Google Colab that cell first clones the repository to ``/content`` and installs it (its
text is written by ``scripts/sync_notebooks.py`` from ``densenet_tutorial.project``); then,
on Colab and on your own machine alike, it calls ``setup()``. Locally ``setup()`` installs
nothing and clones nothing: it only moves to the project root and reports the hardware.
"""

import os
import sys

from densenet_tutorial.project import ROOT

NO_GPU_ADVICE = """\
No GPU found. That is fine with QUICK = True (generated images, small sizes, minutes on a CPU).
The real run (QUICK = False) trains DenseNet-169 on 25,000 images and needs a GPU:
  on Colab: Runtime > Change runtime type > T4 GPU > Save, then Runtime > Run all;
  on your own machine: set QUICK = True in the parameters cell below."""


def on_colab():
    """True inside a Google Colab kernel (which imports ``google.colab`` at start-up)."""
    return "google.colab" in sys.modules


def setup():
    """Work from the project root (so ``data/`` and ``runs/`` resolve) and report GPUs."""
    os.chdir(ROOT)
    print(f"Project root: {ROOT}")
    gpus = gpu_names()
    print(f"GPU: {', '.join(gpus)}" if gpus else NO_GPU_ADVICE)


def gpu_names():
    """The names of the GPUs TensorFlow can use (empty on a CPU-only machine)."""
    import tensorflow as tf

    devices = tf.config.list_physical_devices("GPU")
    return [
        tf.config.experimental.get_device_details(d).get("device_name", d.name) for d in devices
    ]
