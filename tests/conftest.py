"""Fixtures shared by the test modules."""

import sys
import warnings

import pytest
from helpers import COLAB_STUB

from densenet_tutorial.data import prepare, synthesize


@pytest.fixture(scope="session")
def synthetic_split(tmp_path_factory):
    """A prepared split of generated images: returns the split folder (``OUT/splits``).

    40 images per class at about 96x72 px, in the ``class-folders`` layout of the default
    Kaggle handle, with the broken and unusual files of ``--broken``: 28 / 6 / 6 images
    per class for train / val / test. Read it with ``make_dataset(synthetic_split, part)``.
    """
    folder = tmp_path_factory.mktemp("synthetic")
    synthesize(folder / "images", 40, layout="class-folders", broken=True, size=(96, 72))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "fewer than 25,000 images: 68/16/16"
        return prepare(source=folder / "images", out=folder / "out", workers=1, progress=False)


@pytest.fixture
def colab_kernel(monkeypatch):
    """This process as a Colab kernel: ``google.colab`` imported, as Colab's kernels do at
    start-up, from the stand-in in ``tests/colab_stub`` (its ``drive.mount`` and
    ``files.upload`` are driven by environment variables, see there). Afterwards every
    ``google.colab`` module is gone again, so no later test believes it runs on Colab."""
    monkeypatch.syspath_prepend(str(COLAB_STUB))
    import google.colab

    yield google.colab
    for name in [name for name in sys.modules if name.startswith("google.colab")]:
        del sys.modules[name]
