"""``drive.mount(path)``: the mount point becomes a link to ``$FAKE_COLAB_DRIVE``.

The folder survives the "runtime" (a temporary copy of the repository) like Google Drive
survives a Colab runtime reset.
"""

import os
from pathlib import Path


def mount(mountpoint, force_remount=False):
    drive = Path(os.environ["FAKE_COLAB_DRIVE"])
    (drive / "MyDrive").mkdir(parents=True, exist_ok=True)
    mountpoint = Path(mountpoint)
    if not mountpoint.exists():
        mountpoint.parent.mkdir(parents=True, exist_ok=True)
        mountpoint.symlink_to(drive, target_is_directory=True)
    print(f"Mounted at {mountpoint}")
