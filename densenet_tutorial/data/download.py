"""Step 1: get the Kaggle Cats-vs-Dogs images with kagglehub.

The default handle is the public ``salader/dogs-vs-cats`` dataset, pinned to version 1: it
needs no Kaggle account, and a pinned version is served from kagglehub's cache
(``~/.cache/kagglehub`` or ``$KAGGLEHUB_CACHE``) without asking the network, so a second
run works offline. ``biaiscience/dogs-vs-cats`` is the fallback. The competition
``dogs-vs-cats`` (``--handle dogs-vs-cats``) needs a Kaggle token and its accepted rules.
kagglehub's errors are turned into messages that say what to do, among them: pass a folder
you already have with ``--source DIR``.

Where the photos come from depends on the runtime, and ``download_dataset`` says which
before it starts (``describe_source``). On Google Colab, kagglehub does not download a
dataset: it asks the runtime (the address in ``$TBE_RUNTIME_ADDR``) to mount it read-only
under ``/kaggle/input/`` and then waits for that folder, checking every 5 s with no time
limit (``colab_cache_resolver.py``, kagglehub 0.3.13 and 1.0.x). So kagglehub runs in a
background thread, watched: a download or a mount that makes no progress (no new bytes in
kagglehub's cache, no mounted folder) for ``STALL_SECONDS`` stops with one line saying what
was waited for and what to try. The thread itself cannot be stopped; it is left sleeping.
"""

import os
import threading
import time
from http import HTTPStatus
from pathlib import Path

import requests

from densenet_tutorial.errors import RunError

DEFAULT_HANDLE = "salader/dogs-vs-cats/versions/1"
FALLBACK_HANDLE = "biaiscience/dogs-vs-cats/versions/1"
COMPETITION = "dogs-vs-cats"
SOURCE_HINT = (
    "If you already have the images, use them instead: "
    "`python -m densenet_tutorial prepare --source DIR` (or prepare(source=DIR))."
)
STALL_SECONDS = 300
"""A download or mount that makes no progress for this long (5 minutes) is stopped."""
POLL_SECONDS = 5  # how often the progress is looked at
COLAB_MOUNT_FOLDER = "/kaggle/input"  # kagglehub's DEFAULT_COLAB_CACHE_MOUNT_FOLDER


def is_competition(handle):
    """A competition handle is one name (``dogs-vs-cats``); a dataset's is ``owner/slug``."""
    return "/" not in handle


def fetch(handle):
    """The local folder of ``handle``, downloading it unless kagglehub has it cached."""
    import kagglehub  # here, not at the top: it takes a second to import, and only this needs it

    if is_competition(handle):
        return Path(kagglehub.competition_download(handle))
    return Path(kagglehub.dataset_download(handle))


def colab_mount_folder(handle):
    """Where kagglehub will ask Colab to mount ``handle``, or None if it downloads it.

    As kagglehub decides (``DatasetColabCacheResolver.is_supported``): on Colab
    (``TBE_RUNTIME_ADDR`` set), for a dataset, unless ``DISABLE_COLAB_CACHE`` is set; under
    ``$COLAB_CACHE_MOUNT_FOLDER``, by default ``/kaggle/input``. (Colab may still answer
    that it does not have the dataset; kagglehub then downloads it.)
    """
    from kagglehub.config import is_colab_cache_disabled

    if is_competition(handle) or "TBE_RUNTIME_ADDR" not in os.environ:
        return None
    if is_colab_cache_disabled():
        return None
    return Path(os.environ.get("COLAB_CACHE_MOUNT_FOLDER", COLAB_MOUNT_FOLDER))


def cache_folder(handle):
    """The folder of ``handle`` in kagglehub's cache (``~/.cache/kagglehub`` or
    ``$KAGGLEHUB_CACHE``), where it downloads and unpacks it."""
    from kagglehub.config import get_cache_folder

    if is_competition(handle):
        return Path(get_cache_folder()) / "competitions" / handle
    return Path(get_cache_folder()) / "datasets" / handle


def describe_source(handle):
    """One line saying where the photos of ``handle`` will come from on this runtime."""
    mount = colab_mount_folder(handle)
    if mount:
        return (
            f"The photos: kagglehub asks this Colab runtime to mount {handle} read-only under "
            f"{mount}/ (Colab keeps a copy of Kaggle's datasets; nothing is downloaded into "
            f"the runtime). If that makes no progress for {STALL_SECONDS // 60} minutes, "
            "this stops and says what to try."
        )
    folder = cache_folder(handle)
    if folder.is_dir():
        return f"The photos: {handle}, in kagglehub's cache {folder} (downloaded before)."
    return (
        f"The photos: {handle}, downloaded by kagglehub into its cache {folder} on this "
        "machine's disk (once; later runs read them from there)."
    )


def progress_mark(handle, mount):
    """What changes while kagglehub makes progress: the files and bytes of its cache folder
    for ``handle``, and what is in the Colab mount folder (not recursively: a mount is over
    the network)."""
    files = size = 0
    for folder, _, names in os.walk(cache_folder(handle)):
        for name in names:
            try:
                size += os.stat(os.path.join(folder, name)).st_size
                files += 1
            except OSError:  # renamed or deleted as we looked
                pass
    mounted = sorted(os.listdir(mount)) if mount and mount.is_dir() else None
    return files, size, mounted


def stalled(handle, mount, seconds):
    """The one-line message of a download or mount that made no progress for ``seconds``."""
    minutes = f"{seconds / 60:g} minutes" if seconds >= 60 else f"{seconds:g} s"
    if mount:
        return (
            f"Waited {minutes} for Colab to mount {handle} under {mount} (kagglehub's Colab "
            f"cache) and nothing appeared. Try: os.environ['DISABLE_COLAB_CACHE'] = '1' (or "
            f"DISABLE_COLAB_CACHE=1 before the command), so that kagglehub downloads the "
            f"files instead; or another handle, e.g. --handle {FALLBACK_HANDLE}. {SOURCE_HINT}"
        )
    return (
        f"The download of {handle} made no progress for {minutes} (nothing new in "
        f"kagglehub's cache {cache_folder(handle)}). Check the network and rerun, or try "
        f"another handle, e.g. --handle {FALLBACK_HANDLE}. {SOURCE_HINT}"
    )


def fetch_watched(handle):
    """``fetch(handle)``, stopped with a RunError if it makes no progress for ``STALL_SECONDS``.

    kagglehub runs in a daemon thread; this thread looks every ``POLL_SECONDS`` at
    ``progress_mark``. A stopped fetch leaves that thread behind (Python cannot stop one).
    """
    result = {}

    def run():
        try:
            result["folder"] = fetch(handle)
        except BaseException as error:  # handed to the caller below
            result["error"] = error

    mount = colab_mount_folder(handle)
    worker = threading.Thread(target=run, name=f"kagglehub {handle}", daemon=True)
    worker.start()
    mark, since = progress_mark(handle, mount), time.monotonic()
    while worker.is_alive():
        worker.join(POLL_SECONDS)
        if not worker.is_alive():
            break
        now = progress_mark(handle, mount)
        if now != mark:
            mark, since = now, time.monotonic()
        elif time.monotonic() - since >= STALL_SECONDS:
            raise RunError(stalled(handle, mount, STALL_SECONDS))
    if "error" in result:
        raise result["error"]
    return result["folder"]


def explain_failure(handle, error):
    """One line saying why downloading ``handle`` failed and how to fix it."""
    from kagglehub.exceptions import UnauthenticatedError

    if isinstance(error, UnauthenticatedError):
        return (
            f"{handle}: the competition needs a Kaggle API token. Create one at "
            "https://www.kaggle.com/settings and run kagglehub.login(), or set "
            "KAGGLE_USERNAME and KAGGLE_KEY, or save it as ~/.kaggle/kaggle.json."
        )
    status = getattr(getattr(error, "response", None), "status_code", None)
    if status in (HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN) and is_competition(handle):
        return (
            f"{handle}: Kaggle refused access (HTTP {status}). Accept the competition's rules "
            f"at https://www.kaggle.com/competitions/{handle}/rules with the account of your "
            "token, then retry."
        )
    if status in (HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN):
        return f"{handle}: Kaggle refused access (HTTP {status}); the dataset may be private."
    if status == HTTPStatus.NOT_FOUND:
        return f"{handle}: no such dataset or version on Kaggle (HTTP 404); check the handle."
    if isinstance(error, (requests.ConnectionError, requests.Timeout)):
        pin = "" if "/versions/" in handle or is_competition(handle) else (
            " (kagglehub asks the network for the latest version of an unversioned handle;"
            " pin one, OWNER/SLUG/versions/N, to use its cache offline)"
        )  # fmt: skip
        return f"{handle}: Kaggle is unreachable (no network?) and the handle is not cached{pin}."
    return f"{handle}: {type(error).__name__}: {error}"


def download_dataset(handle=None, say=print):
    """``(folder, handle)``: the downloaded images and the handle that gave them.

    Without ``handle`` it tries ``DEFAULT_HANDLE`` and then ``FALLBACK_HANDLE``, saying
    first (``say``) where the photos will come from. Raises RuntimeError, naming each handle
    tried and why it failed, when none could be had, and at once when one makes no progress.
    """
    from kagglehub.exceptions import DataCorruptionError, UnauthenticatedError

    handles = [handle] if handle else [DEFAULT_HANDLE, FALLBACK_HANDLE]
    failures = []
    for candidate in handles:
        say(describe_source(candidate))
        try:
            return fetch_watched(candidate), candidate
        except (requests.RequestException, UnauthenticatedError, DataCorruptionError) as error:
            failures.append(explain_failure(candidate, error))
    raise RunError(
        "Could not download the images.\n  " + "\n  ".join(failures) + f"\n{SOURCE_HINT}"
    )
