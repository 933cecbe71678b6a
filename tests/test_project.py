"""Where products go, and how errors reach the user: the project's own plumbing."""

import pytest

from densenet_tutorial import cli, demo, project
from densenet_tutorial.errors import MissingInputError, ProjectError, SettingError

ROOT = project.package_checkout()


def test_products_go_to_the_checkout_the_user_works_in(monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT / "notebooks")  # a notebook's kernel starts in notebooks/
    assert project.products_dir() == ROOT
    assert project.data_dir() == ROOT / "data" and project.runs_dir() == ROOT / "runs"
    monkeypatch.chdir(tmp_path)  # outside any checkout: the working directory, not site-packages
    assert project.products_dir() == tmp_path
    assert project.data_dir() == tmp_path / "data"


def test_outside_a_checkout_the_notebooks_are_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(project, "package_checkout", lambda: None)  # a non-editable install
    with pytest.raises(MissingInputError, match="git clone"):
        demo.notebook_paths()
    assert cli.main(["demo"]) == 2


def test_only_errors_the_user_can_fix_lose_their_traceback(monkeypatch, capsys):
    def fixable(args):
        raise SettingError("growth_rate=0 is not allowed: a whole number >= 1 (k).")

    monkeypatch.setattr(cli, "cmd_summary", fixable)
    assert cli.main(["summary"]) == 2
    assert capsys.readouterr().err == (
        "error: growth_rate=0 is not allowed: a whole number >= 1 (k).\n"
    )
    assert issubclass(SettingError, ProjectError) and issubclass(SettingError, ValueError)

    def bug(args):
        raise ValueError("a bug inside a library")

    monkeypatch.setattr(cli, "cmd_summary", bug)
    with pytest.raises(ValueError, match="a bug inside a library"):
        cli.main(["summary"])
