"""Repository hygiene: lint, formatting, and one list of runtime packages."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _ruff(*args):
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True
    )


def test_ruff_lint_is_clean():
    result = _ruff("check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean():
    result = _ruff("format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_requirements_txt_is_the_runtime_set_plus_the_notebooks_extra():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + project["optional-dependencies"]["notebooks"]
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    listed = [line for line in lines if line.strip() and not line.startswith("#")]
    assert sorted(listed) == sorted(declared)


def test_runtime_dependencies_leave_colabs_jupyter_alone():
    """On Colab `pip install -e .` installs the runtime set: no notebook server, no papermill."""
    runtime = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {requirement.split(">")[0].split("=")[0] for requirement in runtime}
    assert not names & {"jupyter", "notebook", "ipykernel", "papermill", "nbformat", "pytest"}
    assert "opencv-python" in names and "opencv-python-headless" not in names


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = next(line for line in ci.splitlines() if "pytest" in line)
    assert command.strip() in readme


def test_nothing_points_at_documents_the_repository_does_not_hold():
    """A reader has only the repository: facts are stated, not referred to elsewhere."""
    # Written in pieces, so that this file does not match the pattern it searches for.
    pointers = ["REFERENCE" + r"\.md", "seed" + " 00[01]", r"\bissues? ([2-9]|1[0-9])\b",
                "issue" + "'s budget", "test_" + "packaging"]  # fmt: skip
    command = ["git", "grep", "-n", "-I", "-E", "|".join(pointers), "--", ".", ":!LICENSE"]
    found = subprocess.run(command, cwd=ROOT, capture_output=True, text=True).stdout
    assert found == "", found


def test_colab_environment_pins_every_package_the_project_needs():
    """CI's second environment is Colab's: each runtime package at the version Colab has."""
    text = (ROOT / "requirements-colab.txt").read_text()
    assert "googlecolab/backend-info" in text and "pip-freeze.gpu.txt" in text  # the source
    assert re.search(r"\b20\d\d-\d\d-\d\d\b", text)  # and its date
    pins = dict(line.split("==") for line in text.splitlines() if line and not line.startswith("#"))
    normal = {re.sub(r"[-_.]+", "-", name).lower() for name in pins}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    needed = project["dependencies"] + ["ipykernel", "nbclient", "papermill", "pytest"]
    for requirement in needed:
        name = re.split(r"[<>=\[ ]", requirement)[0]
        assert re.sub(r"[-_.]+", "-", name).lower() in normal, name
    ci = (ROOT / ".ci" / "run").read_text()
    assert "PYENV_VERSION=3.13" in ci and "pip install -r requirements-colab.txt" in ci
    colab_tests = ci.split("pip install -r requirements-colab.txt")[1]
    for tests in ("colab", "notebooks", "exercises", "xla", "augment"):
        assert f"tests/test_{tests}.py" in colab_tests, tests
