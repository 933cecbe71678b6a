"""Where the project lives: its public address and its folders.

``REPOSITORY`` is the one setting that the notebooks' "Open in Colab" badges and their
Colab set-up cell are written from (``python scripts/sync_notebooks.py``); publishing the
project under another address is a change of this one line followed by that script.
"""

from pathlib import Path

REPOSITORY = "densenet-tutorial/densenet-tutorial"  # GitHub "owner/name"
BRANCH = "main"

ROOT = Path(__file__).resolve().parent.parent
"""The repository's root (an editable install or a checkout): holds data/ and runs/."""

DATA_DIR = ROOT / "data"
RUNS_DIR = ROOT / "runs"
