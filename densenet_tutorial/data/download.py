"""Step 1: get the Kaggle Cats-vs-Dogs images with kagglehub.

The default handle is the public ``salader/dogs-vs-cats`` dataset, pinned to version 1: it
needs no Kaggle account, and a pinned version is served from kagglehub's cache
(``~/.cache/kagglehub`` or ``$KAGGLEHUB_CACHE``) without asking the network, so a second
run works offline. ``biaiscience/dogs-vs-cats`` is the fallback. The competition
``dogs-vs-cats`` (``--handle dogs-vs-cats``) needs a Kaggle token and its accepted rules.
kagglehub's errors are turned into messages that say what to do, among them: pass a folder
you already have with ``--source DIR``.
"""

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


def is_competition(handle):
    """A competition handle is one name (``dogs-vs-cats``); a dataset's is ``owner/slug``."""
    return "/" not in handle


def fetch(handle):
    """The local folder of ``handle``, downloading it unless kagglehub has it cached."""
    import kagglehub  # here, not at the top: it takes a second to import, and only this needs it

    if is_competition(handle):
        return Path(kagglehub.competition_download(handle))
    return Path(kagglehub.dataset_download(handle))


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


def download_dataset(handle=None):
    """``(folder, handle)``: the downloaded images and the handle that gave them.

    Without ``handle`` it tries ``DEFAULT_HANDLE`` and then ``FALLBACK_HANDLE``. Raises
    RuntimeError, naming each handle tried and why it failed, when none could be had.
    """
    from kagglehub.exceptions import DataCorruptionError, UnauthenticatedError

    handles = [handle] if handle else [DEFAULT_HANDLE, FALLBACK_HANDLE]
    failures = []
    for candidate in handles:
        try:
            return fetch(candidate), candidate
        except (requests.RequestException, UnauthenticatedError, DataCorruptionError) as error:
            failures.append(explain_failure(candidate, error))
    raise RunError(
        "Could not download the images.\n  " + "\n  ".join(failures) + f"\n{SOURCE_HINT}"
    )
