"""The notebooks: in step with the package, stored clean, and running top to bottom.

The last test executes every notebook with papermill in quick mode (generated images,
small sizes), in order, into a temporary folder, exactly as ``python -m densenet_tutorial
demo`` does; any error in any cell fails it.
"""

import ast
import importlib.util
import inspect
import re
import shutil
from pathlib import Path

import nbformat
import pytest

from densenet_tutorial import demo, model
from densenet_tutorial.project import BRANCH, REPOSITORY

ROOT = Path(__file__).resolve().parent.parent
SYNC_SCRIPT = ROOT / "scripts" / "sync_notebooks.py"
NOTEBOOKS = demo.notebook_paths()
MODEL_KNOBS = {"QUICK", "GROWTH_RATE", "BLOCKS", "IMAGE_SIZE"}
TRAINING_KNOBS = MODEL_KNOBS | {"BATCH_SIZE", "EPOCHS"}


def load_sync_script():
    spec = importlib.util.spec_from_file_location("sync_notebooks", SYNC_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SYNC = load_sync_script()


def tagged(notebook, tag):
    return [cell for cell in notebook.cells if tag in cell.metadata.get("tags", [])]


def parameter_defaults(notebook):
    """Names and literal values assigned in the cell tagged ``parameters``."""
    (cell,) = tagged(notebook, "parameters")
    tree = ast.parse(cell.source)
    return {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign)
    }


def test_notebooks_are_in_sync_with_the_package(capsys):
    assert SYNC.main(["--check"]) == 0, capsys.readouterr().out


def test_check_catches_a_hand_edited_source_cell_and_sync_repairs_it(tmp_path, capsys):
    notebook_path = tmp_path / "02_densenet_from_scratch.ipynb"
    shutil.copy(ROOT / "notebooks" / notebook_path.name, notebook_path)
    notebook = nbformat.read(notebook_path, as_version=4)
    tag = "source:densenet_tutorial.model.composite_function"
    (cell,) = tagged(notebook, tag)
    cell.source = cell.source.replace("epsilon=BN_EPSILON", "epsilon=1e-3")
    cell.outputs = [nbformat.v4.new_output("stream", name="stderr", text="a TensorFlow log")]
    nbformat.write(notebook, notebook_path)

    assert SYNC.main(["--check", str(notebook_path)]) == 1
    report = capsys.readouterr().out
    assert tag in report and "outputs" in report

    assert SYNC.main([str(notebook_path)]) == 0
    assert SYNC.main(["--check", str(notebook_path)]) == 0
    (cell,) = tagged(nbformat.read(notebook_path, as_version=4), tag)
    assert cell.source == inspect.getsource(model.composite_function).rstrip("\n")
    assert cell.outputs == []


def test_colab_addresses_follow_the_one_setting():
    colab = "https://colab.research.google.com/github"
    text = f"[03]({colab}/someone/fork/blob/dev/notebooks/03_train.ipynb)"
    expected = f"[03]({colab}/{REPOSITORY}/blob/{BRANCH}/notebooks/03_train.ipynb)"
    assert SYNC.with_current_colab_urls(text) == expected


def test_figures_are_linked_from_the_one_setting():
    raw = f"https://raw.githubusercontent.com/{REPOSITORY}/{BRANCH}/images"
    for stale in (
        "](../images/architecture.png)",
        "](https://raw.githubusercontent.com/a/b/dev/images/architecture.png)",
    ):
        assert SYNC.with_current_image_urls(f"![x]{stale[1:]}") == f"![x]({raw}/architecture.png)"
    for path in NOTEBOOKS:
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "markdown":
                assert "](../images" not in cell.source, path.name
                for link in re.findall(r"raw\.githubusercontent\.com/[^)]+", cell.source):
                    assert (
                        link.startswith(raw[8:])
                        and (ROOT / "images" / link.split("/")[-1]).exists()
                    )


def test_readme_table_lists_every_notebook_with_its_badge():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split(SYNC.TABLE_START)[1].split(SYNC.TABLE_END)[0]
    rows = [line for line in table.splitlines() if "](notebooks/" in line]
    assert [row.split("](notebooks/")[1].split(")")[0] for row in rows] == [
        path.name for path in NOTEBOOKS
    ]
    for row, path in zip(rows, NOTEBOOKS, strict=True):
        badge = f"/{REPOSITORY}/blob/{BRANCH}/notebooks/{path.name})"
        assert badge in row and "colab-badge.svg" in row


def test_table_sync_writes_links_and_badges_and_keeps_the_hand_written_cells():
    first, second = NOTEBOOKS[0].name, NOTEBOOKS[1].name
    stale = (
        f"before\n{SYNC.TABLE_START}\n| old | old |\n"
        f"| [x](notebooks/{first}) | [badge](https://elsewhere/{first}) | teaches A | 9 s | n/a |\n"
        f"{SYNC.TABLE_END}\nafter"
    )
    rows = SYNC.with_notebooks_table(stale).splitlines()
    assert rows[0] == "before" and rows[-1] == "after"
    (row,) = [line for line in rows if f"](notebooks/{first})" in line]
    assert row.startswith(f"| [{SYNC.notebook_title(NOTEBOOKS[0])}](notebooks/{first}) | ")
    assert SYNC.colab_badge(first) in row and row.endswith("| teaches A | 9 s | n/a |")
    (new_row,) = [line for line in rows if f"](notebooks/{second})" in line]
    assert new_row.endswith(" | ".join(SYNC.NOT_WRITTEN) + " |")
    assert len([line for line in rows if "](notebooks/" in line]) == len(NOTEBOOKS)
    assert SYNC.with_notebooks_table(SYNC.with_notebooks_table(stale)) == (
        SYNC.with_notebooks_table(stale)
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_stored_without_outputs_or_execution_counts(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.execution_count is None, cell.source[:60]
            keeps = SYNC.keeps_outputs(notebook, path.name)
            assert (cell.outputs != []) <= keeps, cell.source[:60]
    assert SYNC.keeps_outputs(notebook, path.name) <= (
        path.name in SYNC.KEEPS_OUTPUTS + SYNC.RUN_OUTPUTS
    )


def test_check_accepts_a_run_s_outputs_under_their_note_and_only_there(tmp_path, capsys):
    """01, 03 and 04 may keep the outputs ``--outputs --photos`` stored, under its note."""
    name = SYNC.RUN_OUTPUTS[0]
    notebook = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    notebook.cells = [c for c in notebook.cells  # as stored before a run's outputs: no note
                      if SYNC.OUTPUTS_NOTE not in c.metadata.get("tags", [])]  # fmt: skip
    cell = next(c for c in notebook.cells if c.cell_type == "code" and "print(" in c.source)
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="measured\n")]
    bare = tmp_path / "bare" / name
    bare.parent.mkdir()
    nbformat.write(notebook, bare)
    assert SYNC.main(["--check", str(bare)]) == 1  # no note: outputs are not kept
    noted = tmp_path / name
    nbformat.write(SYNC.with_outputs_note(notebook, "*made by a test*"), noted)
    assert SYNC.main([str(noted)]) == 0 and SYNC.main(["--check", str(noted)]) == 0
    stored = nbformat.read(noted, as_version=4)
    title = next(i for i, c in enumerate(stored.cells) if c.source.startswith("# "))
    assert stored.cells[title + 1].source == "*made by a test*"
    assert "measured\n" in SYNC.printed(stored)
    capsys.readouterr()


@pytest.mark.parametrize("name", SYNC.KEEPS_OUTPUTS)
def test_stored_outputs_are_what_the_code_prints_now(name, tmp_path):
    """Notebook 02 keeps the outputs of a real run (DenseNet-169 at 224 px, no data, no GPU)."""
    stored = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    assert any(SYNC.printed(stored)), "run `python scripts/sync_notebooks.py --outputs`"
    fresh = SYNC.execute(ROOT / "notebooks" / name, tmp_path / name)
    assert SYNC.printed(fresh) == SYNC.printed(stored)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_badge_parameters_set_up_drive_and_runtime(path):
    notebook = nbformat.read(path, as_version=4)
    parameters, setup = [cell for cell in notebook.cells if cell.cell_type == "code"][:2]
    assert "parameters" in parameters.metadata.get("tags", [])
    assert "setup" in setup.metadata.get("tags", [])
    defaults = parameter_defaults(notebook)
    needs_earlier_work = path.name.startswith(("03", "04", "05", "06"))
    if needs_earlier_work:  # only these mount Drive, whose permission dialog stops Run all
        assert "colab.setup(KEEP_ON_DRIVE" in setup.source and defaults["KEEP_ON_DRIVE"] is True
    else:
        assert "colab.setup(keep_on_drive=None" in setup.source and "KEEP_ON_DRIVE" not in defaults
    if path.name.startswith("02"):  # it builds and counts: Colab's default runtime, no GPU
        assert "accelerator" not in notebook.metadata
        assert "gpuType" not in notebook.metadata["colab"]
    else:
        assert notebook.metadata["accelerator"] == "GPU"  # Colab opens it on a GPU runtime
        assert notebook.metadata["colab"]["gpuType"] == "T4"
    (badge,) = tagged(notebook, "colab-badge")
    assert badge.source.endswith(f"/{REPOSITORY}/blob/{BRANCH}/notebooks/{path.name})")
    assert defaults["QUICK"] is False  # the real run is the default; CI injects QUICK=True
    trains = path.name.startswith(("03", "05", "06"))
    assert ("REQUIRE_GPU" in defaults) == trains and defaults.get("REQUIRE_GPU", True) is True
    assert ("require_gpu=REQUIRE_GPU and not QUICK" in setup.source) == trains
    if path.name.startswith(("03", "05")):
        assert defaults.keys() >= TRAINING_KNOBS
    elif path.name.startswith(("02", "04")):
        assert defaults.keys() >= MODEL_KNOBS
    elif path.name.startswith("06"):  # the ImageNet DenseNet-169: k and blocks are fixed
        assert defaults.keys() >= {"QUICK", "IMAGE_SIZE", "BATCH_SIZE", "EPOCHS", "WEIGHTS"}


def test_demo_makes_its_output_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "notebook_paths", lambda: [])  # the folder, not the notebooks
    out_dir = tmp_path / "runs" / "demo"
    assert demo.demo(out_dir) == {}
    assert out_dir.is_dir()


@pytest.fixture(scope="module")
def quick_run_dir(tmp_path_factory):
    """One folder shared by the notebooks of one run, so later ones find earlier products."""
    return tmp_path_factory.mktemp("notebooks")


CHANGED_GROWTH_RATE = 8  # the learner's loop: k changed in notebook 03 only


@pytest.mark.parametrize(
    "path", [p for p in NOTEBOOKS if p.name not in SYNC.KEEPS_OUTPUTS], ids=lambda p: p.stem
)
def test_runs_top_to_bottom_in_quick_mode(path, quick_run_dir):
    """In order, as a learner would: 03 with another k, then 04 and 05 left as they are."""
    parameters = demo.quick_parameters(quick_run_dir / "runs", quick_run_dir / "data")
    if path.name.startswith("03"):
        parameters["GROWTH_RATE"] = CHANGED_GROWTH_RATE
    executed = demo.run_notebook(path, quick_run_dir, parameters)
    figures = demo.save_figures(executed, quick_run_dir / "figures")
    assert figures, "every notebook shows at least one figure"
    assert all(figure.read_bytes().startswith(b"\x89PNG") for figure in figures)
    text = "\n".join(SYNC.printed(nbformat.read(executed, as_version=4)))
    if path.name.startswith("04"):  # it opened the model 03 trained, with the new k
        assert f"-k{CHANGED_GROWTH_RATE}-" in text.split("parameters")[0]
    if path.name.startswith("05"):  # and 05 added that k to its comparison
        assert f"growth rates [{CHANGED_GROWTH_RATE}, 12, 24, 32]" in text
