"""Where the project lives: its public address, its checkout, and where products go.

``REPOSITORY`` is the one setting that the notebooks' "Open in Colab" badges, their figures
and their Colab set-up cell are written from (``python scripts/sync_notebooks.py``);
publishing the project under another address is a change of this one line followed by that
script.

Products (``data/``: the checked split; ``runs/``: training runs) go into the checkout of
this repository that the user works in, or, outside any checkout, into the working
directory: never into the installed package (``site-packages``).
"""

from pathlib import Path

from densenet_tutorial.errors import MissingInputError

REPOSITORY = "densenet-tutorial/densenet-tutorial"  # GitHub "owner/name"
BRANCH = "main"
PROJECT_NAME = "densenet-tutorial"  # as pyproject.toml names it


def is_checkout(folder):
    """True if ``folder`` is a checkout of this repository (its pyproject and notebooks)."""
    pyproject = Path(folder) / "pyproject.toml"
    return (
        pyproject.is_file()
        and f'name = "{PROJECT_NAME}"' in pyproject.read_text(encoding="utf-8")
        and (Path(folder) / "notebooks").is_dir()
    )


def checkout(start=None):
    """The checkout holding ``start`` (default: the working directory), else ``None``."""
    start = Path(start or Path.cwd()).resolve()
    return next((folder for folder in (start, *start.parents) if is_checkout(folder)), None)


def package_checkout():
    """The checkout this package was imported from (an editable install), else ``None``."""
    return checkout(Path(__file__).resolve().parent)


def products_dir():
    """Where ``data/`` and ``runs/`` go: the checkout the user works in, else the working dir."""
    return checkout() or Path.cwd()


def data_dir():
    return products_dir() / "data"


def runs_dir():
    return products_dir() / "runs"


def notebooks_dir():
    """The notebooks: in the checkout the user works in, or the one the package came from."""
    found = checkout() or package_checkout()
    if found is None:
        raise MissingInputError(
            f"The notebooks come with the repository, not with the installed package: "
            f"`git clone https://github.com/{REPOSITORY}` and run this inside the clone."
        )
    return found / "notebooks"
