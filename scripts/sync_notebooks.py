"""Keep the notebooks in step with the package: one source of truth for code and addresses.

    python scripts/sync_notebooks.py            # rewrite whatever is out of date
    python scripts/sync_notebooks.py --check    # change nothing; exit 1 naming each difference

What it writes, and where from:

- the cell tagged ``colab-badge``: an "Open in Colab" badge pointing at the notebook's own
  path, and every other Colab address in the notebooks' text and in README.md, from the one
  setting ``densenet_tutorial.project.REPOSITORY`` / ``BRANCH``, and so are the addresses of
  the figures of ``images/`` shown in the notebooks (relative paths break in Colab);
- the cell tagged ``setup`` (the code cell right after the ``parameters`` cell): clone, check
  the runtime (``colab.check_runtime``) and install on Colab, then
  ``densenet_tutorial.colab.setup(...)`` with the notebook's
  ``KEEP_ON_DRIVE`` (and ``REQUIRE_GPU``, in the notebooks that train), with the same address;
  a notebook without ``KEEP_ON_DRIVE`` (01, 02: they need nothing from earlier work) gets
  ``keep_on_drive=None``, so that Colab does not stop *Run all* at Drive's permission dialog;
- the notebook's metadata: a Python 3 kernel, and a GPU (T4) runtime on Colab, except for the
  notebooks of ``WITHOUT_GPU`` (02 builds and counts; it trains nothing);
- nothing in the cell tagged ``parameters``, but it is checked: a Colab form (``# @title``,
  then one ``NAME = value  # @param {...} help`` per line) that papermill can also read,
  which means no ``=`` in a comment (papermill skips such a line with "Unable to parse") and
  a help after each ``@param`` (what ``papermill --help-notebook`` prints);
- every cell tagged ``source:MODULE.NAME`` (for example
  ``source:densenet_tutorial.model.composite_function``): the source code of that function,
  exactly as it is written in the package. The notebook runs that cell, so
  a learner reads, and runs, the code the package runs and the tests check; on GitHub,
  where outputs are not shown, the code is still there to read;
- the table of the notebooks in README.md, between ``<!-- notebooks-table:start -->`` and
  ``<!-- notebooks-table:end -->``: one row per notebook, in order, whose first two cells (the
  link with the notebook's title, the Colab badge) are written here; the other cells (what it
  teaches, how long it takes) are written by hand and kept;
- outputs, execution counts and run metadata removed, so notebooks are stored clean; except
  the notebooks of ``KEEPS_OUTPUTS`` (02), which keep the outputs of a real run (``--outputs``
  reruns them; the tests rerun them and compare what they print), and those of
  ``RUN_OUTPUTS`` (01, 03, 04) once ``--outputs --photos DIR --run RUN`` has run them on a
  folder of real photos and a finished training run: they keep those outputs under a note
  (a Markdown cell tagged ``outputs-note``, after the title) that says what produced them.

    python scripts/sync_notebooks.py --outputs --photos PHOTOS --run RUN

executes 01, 03 and 04 with papermill, ``PHOTOS`` as their folder of photos and ``RUN``'s
network and budget (its ``config.json``) as their parameters, in this checkout's ``data/``
and ``runs/`` (``RUN`` and the split it was trained on are linked there under the names the
notebooks look for, so 03 finds the run finished and only evaluates it). ``RUN`` must have
been trained on the split ``prepare`` made of ``PHOTOS``, with ``train``'s defaults for
everything but the network and the budget (as notebook 03 trains).

The tests run ``--check``: editing a building block in the package without running this
script, or editing a copied cell by hand, fails CI.
"""

import argparse
import ast
import copy
import importlib.util
import json
import re
import sys
from pathlib import Path

import nbformat

from densenet_tutorial.project import BRANCH, REPOSITORY

ROOT = Path(__file__).resolve().parent.parent  # the checkout this script belongs to
NOTEBOOKS_DIR = ROOT / "notebooks"
README = ROOT / "README.md"
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
COLAB_URL = re.compile(
    r"https://colab\.research\.google\.com/github/[^\s)\"'<>]+?/([\w.-]+\.ipynb)"
)
IMAGE_LINK = re.compile(
    r"\]\((?:\.\./|https://raw\.githubusercontent\.com/[^\s)]+?/)images/([\w.-]+)\)"
)
SOURCE_TAG = "source:"
TABLE_START, TABLE_END = "<!-- notebooks-table:start -->", "<!-- notebooks-table:end -->"
TABLE_HEADER = [
    "| notebook | open | what it teaches | quick mode, 2-vCPU AVX-512 CPU | full run, Colab T4 |",
    "|---|---|---|---|---|",
]
NOT_WRITTEN = ["(to write)", "not measured", "not measured"]  # hand-written cells of a new row
REQUIRED_TAGS = ("colab-badge", "setup", "parameters")
FORM_LINE = re.compile(
    r"^(?P<name>[A-Z][A-Z0-9_]*) = (?P<value>.+?)  # @param "
    r"(?P<spec>\{[^=]*?\}|\[[^=]*?\](?: \{[^=]*?\})?)(?: (?P<help>\S.*))?$"
)
"""One line of a Colab form (``x = 1  # @param {type:"integer"} help``), as papermill reads it:
one ``=``; the help is what follows the ``@param`` options."""
KEEPS_OUTPUTS = ("02_densenet_from_scratch.ipynb",)
"""Stored with the outputs of a real run (it needs no data and no GPU), so that a reader on
GitHub sees what the code prints; ``--outputs`` reruns it and the tests check the outputs."""
RUN_OUTPUTS = ("01_data.ipynb", "03_train.ipynb", "04_feature_maps_and_gradcam.ipynb")
"""Stored with the outputs of a training run on real photos when ``--outputs --photos`` made
them, under the note tagged ``OUTPUTS_NOTE``; without that note, stored clean."""
OUTPUTS_NOTE = "outputs-note"

SETUP_CELL = """\
# Set-up, written by scripts/sync_notebooks.py from densenet_tutorial/project.py.
# On Colab: fetch the project and install it. On your own machine: nothing is installed.
import subprocess
import sys
from pathlib import Path

REPOSITORY, BRANCH = "@REPOSITORY@", "@BRANCH@"
if "google.colab" in sys.modules:
    checkout = Path("/content") / REPOSITORY.split("/")[-1]
    cloned = not checkout.exists()
    if cloned:
        url = f"https://github.com/{REPOSITORY}"
        subprocess.run(["git", "clone", "--depth=1", "-b", BRANCH, url, checkout], check=True)
    if str(checkout) not in sys.path:
        sys.path.insert(0, str(checkout))  # a running kernel does not see a fresh editable install
    from densenet_tutorial import colab

    colab.check_runtime()  # a runtime that cannot train (a Colab TPU) stops here
    if cloned:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", checkout], check=True)

from densenet_tutorial import colab

colab.setup(@ARGUMENTS@)"""


def colab_url(notebook_name):
    """Where Colab opens ``notebooks/NAME.ipynb`` of the published repository."""
    return (
        f"https://colab.research.google.com/github/{REPOSITORY}/blob/{BRANCH}"
        f"/notebooks/{notebook_name}"
    )


def colab_badge(notebook_name):
    return f"[![Open In Colab]({BADGE_IMAGE})]({colab_url(notebook_name)})"


COLAB_METADATA = {"accelerator": "GPU", "colab": {"gpuType": "T4", "provenance": []}}
"""What Colab reads to open a notebook on a GPU runtime (written when one saves it so)."""
WITHOUT_GPU = ("02_densenet_from_scratch.ipynb",)
"""Notebooks that open on Colab's default CPU runtime: they train nothing."""


def colab_metadata(notebook_name):
    """A GPU (T4) runtime on Colab, or the default one for the notebooks of ``WITHOUT_GPU``."""
    return {"colab": {"provenance": []}} if notebook_name in WITHOUT_GPU else COLAB_METADATA


def setup_cell(parameters):
    """The set-up cell of a notebook whose parameters cell assigns ``parameters``."""
    arguments = "KEEP_ON_DRIVE" if "KEEP_ON_DRIVE" in parameters else "keep_on_drive=None"
    if "REQUIRE_GPU" in parameters:
        arguments += ", require_gpu=REQUIRE_GPU and not QUICK"
    return (
        SETUP_CELL.replace("@REPOSITORY@", REPOSITORY)
        .replace("@BRANCH@", BRANCH)
        .replace("@ARGUMENTS@", arguments)
    )


def parameter_names(notebook):
    """The names assigned in the notebook's cell tagged ``parameters``."""
    (cell,) = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    return {
        target.id
        for node in ast.parse(cell.source).body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }


def form_problems(source):
    """Why the parameters cell ``source`` is not a Colab form papermill can read (empty: it is)."""
    lines = source.splitlines()
    problems = [] if lines and lines[0].startswith("# @title ") else ["no '# @title' first line"]
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue  # comments (# @title, # @markdown) are skipped by papermill and shown by Colab
        match = FORM_LINE.match(line)
        if line.count("=") != 1:
            problems.append(f"line {number} has an '=' in its comment: {line!r}")
        elif not match:
            problems.append(f"line {number} is not 'NAME = value  # @param {{...}} help': {line!r}")
        elif not match["help"]:
            problems.append(f"line {number} has no help after its @param options: {line!r}")
    return problems


def function_source(dotted_name):
    """The source code of ``module.function``, read from the package's file as written.

    Parsed rather than imported (the same text as ``inspect.getsource``), so that checking
    the notebooks does not start TensorFlow.
    """
    module_name, name = dotted_name.rsplit(".", 1)
    path = Path(importlib.util.find_spec(module_name).origin)
    text = path.read_text(encoding="utf-8")
    for node in ast.parse(text).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name:
            first = min([node.lineno] + [decorator.lineno for decorator in node.decorator_list])
            return "\n".join(text.splitlines()[first - 1 : node.end_lineno])
    raise ValueError(f"cell tag source:{dotted_name}: {path} defines no function {name}")


def with_current_colab_urls(text):
    """Point every Colab address in ``text`` at the current REPOSITORY and BRANCH."""
    return COLAB_URL.sub(lambda match: colab_url(match.group(1)), text)


def image_url(name):
    """Where a figure of ``images/`` is served from the published repository.

    Notebooks link their figures by this absolute address, not by a relative path, which
    breaks in Colab and in a copy saved to Google Drive.
    """
    return f"https://raw.githubusercontent.com/{REPOSITORY}/{BRANCH}/images/{name}"


def with_current_image_urls(text):
    """Point every link to ``images/NAME`` in a notebook's Markdown at ``image_url(NAME)``."""
    return IMAGE_LINK.sub(lambda match: f"]({image_url(match.group(1))})", text)


def notebook_title(path):
    """The first Markdown heading of a notebook, without its ``#``."""
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type == "markdown" and cell.source.startswith("# "):
            return cell.source.splitlines()[0][2:].strip()
    return path.stem


def with_notebooks_table(text):
    """``text`` with its table of the notebooks (between the markers) up to date.

    Each row's link and badge are generated; its other cells are kept, matched by the
    notebook's file name. Text without the markers is returned unchanged.
    """
    start, end = text.find(TABLE_START), text.find(TABLE_END)
    if start < 0 or end < start:
        return text
    kept = {}
    for line in text[start + len(TABLE_START) : end].splitlines():
        link = re.search(r"\]\(notebooks/([\w.-]+\.ipynb)\)", line)
        if link:
            kept[link[1]] = [cell.strip() for cell in line.strip().strip("|").split("|")][2:]
    rows = [
        f"| [{notebook_title(path)}](notebooks/{path.name}) | {colab_badge(path.name)} | "
        + " | ".join(kept.get(path.name, NOT_WRITTEN))
        + " |"
        for path in sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
    ]
    table = "\n".join(["", *TABLE_HEADER, *rows, ""])
    return text[: start + len(TABLE_START)] + table + text[end:]


def synced_cell(cell, notebook_name, parameters, keeps_outputs=False):
    """The cell as it should be stored: generated text where tagged; outputs only where the
    notebook ``keeps_outputs``."""
    cell = copy.deepcopy(cell)
    tags = cell.metadata.get("tags", [])
    sources = [tag[len(SOURCE_TAG) :] for tag in tags if tag.startswith(SOURCE_TAG)]
    if "colab-badge" in tags:
        cell.source = colab_badge(notebook_name)
    elif "setup" in tags:
        cell.source = setup_cell(parameters)
    elif sources:
        cell.source = "\n\n\n".join(function_source(name) for name in sources)
    elif cell.cell_type == "markdown":
        cell.source = with_current_image_urls(with_current_colab_urls(cell.source))
    if cell.cell_type == "code":
        cell.outputs = stored_outputs(cell) if keeps_outputs else []
        cell.execution_count = None
    cell.metadata = {"tags": tags} if tags else {}
    return cell


def keeps_outputs(notebook, notebook_name):
    """Whether the notebook is stored with outputs: ``KEEPS_OUTPUTS``, and ``RUN_OUTPUTS``
    under their note of what produced them."""
    noted = any(OUTPUTS_NOTE in c.metadata.get("tags", []) for c in notebook.cells)
    return notebook_name in KEEPS_OUTPUTS or (notebook_name in RUN_OUTPUTS and noted)


def stored_outputs(cell):
    """What a code cell of a notebook that keeps outputs keeps in the repository: the set-up
    cell's outputs (they describe the machine) and everything printed on stderr (TensorFlow's
    start-up logs, progress bars) are dropped, and so are execution counts.
    """
    if "setup" in cell.metadata.get("tags", []):
        return []
    kept = []
    for output in cell.get("outputs", []):
        if output.output_type == "stream" and output.name == "stderr":
            continue
        output = copy.deepcopy(output)
        if "execution_count" in output:
            output.execution_count = None
        kept.append(output)
    return kept


def printed(notebook):
    """The text each code cell showed (images as ``<image>``): what the outputs check compares."""
    shown = []
    for cell in notebook.cells:
        if cell.cell_type != "code" or "setup" in cell.metadata.get("tags", []):
            continue
        texts = []
        for output in cell.get("outputs", []):
            if output.output_type == "stream" and output.name == "stdout":
                texts.append(output.text)
            elif output.output_type in ("display_data", "execute_result"):
                data = output.get("data", {})
                texts.append("<image>" if "image/png" in data else data.get("text/plain", ""))
        shown.append("".join(texts))
    return shown


def execute(path, out_path, parameters=None):
    """Run a notebook top to bottom with its defaults, or ``parameters`` (papermill); return
    the executed copy, without the cell papermill adds to set the parameters."""
    import papermill

    declared = papermill.inspect_notebook(str(path)) if parameters else {}
    parameters = {name: value for name, value in (parameters or {}).items() if name in declared}
    papermill.execute_notebook(str(path), str(out_path), parameters=parameters, cwd=str(ROOT),
                               kernel_name="python3", progress_bar=False)  # fmt: skip
    executed = nbformat.read(out_path, as_version=4)
    executed.cells = [c for c in executed.cells
                      if "injected-parameters" not in c.metadata.get("tags", [])]  # fmt: skip
    return executed


def link(path, target):
    """``path`` as a symbolic link to ``target`` (kept if it already leads there)."""
    if path.resolve() == target.resolve():
        return
    if path.exists() or path.is_symlink():
        raise SystemExit(f"{path} exists and is not {target}: move it away first.")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target.resolve(), target_is_directory=True)


def run_parameters(photos, run):
    """The parameters that run 01, 03 and 04 on ``photos`` with the finished ``run``, after
    linking the run and its split into this checkout's ``runs/`` and ``data/`` where the
    notebooks look for them."""
    from densenet_tutorial.config import RUN_SETTINGS, from_saved
    from densenet_tutorial.notebooks import data_folder, run_folder

    config = json.loads((run / "config.json").read_text())
    if not (run / "metrics.json").exists():
        raise SystemExit(f"{run} is not a finished run (no metrics.json): train it first.")
    settings = {name: config["settings"][name] for name in RUN_SETTINGS}
    images = ROOT / data_folder("data", False, photos)
    link(images, Path(config["settings"]["split_dir"]).parent)
    link(run_folder(ROOT / "runs", from_saved(config["settings"]), data=images), run)
    names = {"blocks": "BLOCKS", "growth_rate": "GROWTH_RATE", "image_size": "IMAGE_SIZE",
             "batch_size": "BATCH_SIZE", "epochs": "EPOCHS"}  # fmt: skip
    return {"QUICK": False, "KEEP_ON_DRIVE": False, "REQUIRE_GPU": False,
            "PHOTOS": str(photos.resolve()), "DATA_DIR": "data", "RUNS_DIR": "runs",
            **{names[name]: value for name, value in settings.items()}}  # fmt: skip


def outputs_note(photos, run):
    """The note over the outputs of ``RUN_OUTPUTS``: what produced them, and how the learner's
    run on a Colab T4 (the recipe's defaults) differs."""
    from densenet_tutorial.config import RunConfig
    from densenet_tutorial.model import depth

    config = json.loads((run / "config.json").read_text())
    settings, machine = config["settings"], config["run"]["hardware"]
    meta = json.loads((Path(settings["split_dir"]) / "meta.json").read_text())
    photos_count = sum(meta["counts"][part]["total"] for part in ("train", "val", "test"))
    device = ", ".join(machine["gpus"]) or f"{machine['cpu_count']} vCPUs ({machine['cpu']})"
    blocks = ", ".join(map(str, settings["blocks"]))
    full = RunConfig()  # the recipe's run
    return (
        f"*The outputs shown come from DenseNet-{depth(settings['blocks'])} (blocks {blocks}, "
        f"k = {settings['growth_rate']}) at {settings['image_size']} px, {settings['epochs']} "
        f"epochs, trained on {device}, {config['run']['precision']}, on {photos_count:,} of "
        f"Kaggle's photos resized to 200x200 px (the folder `{photos.name}`). Your run on a "
        f"Colab T4 trains DenseNet-{depth(full.blocks)} (k = {full.growth_rate}) at "
        f"{full.image_size} px for {full.epochs} epochs on the full-size photos: its "
        f"figures will differ.*"
    )


def with_outputs_note(notebook, note):
    """``notebook`` with its ``OUTPUTS_NOTE`` cell, right after the title, saying ``note``."""
    cells = [c for c in notebook.cells if OUTPUTS_NOTE not in c.metadata.get("tags", [])]
    title = next(i for i, c in enumerate(cells) if c.source.startswith("# "))
    cell = nbformat.v4.new_markdown_cell(note, metadata={"tags": [OUTPUTS_NOTE]})
    cell.pop("id", None)
    notebook.cells = [*cells[: title + 1], cell, *cells[title + 1 :]]
    return notebook


ANSI = re.compile(r"\x1b\[[0-9;]*m")  # the colours of Keras's progress bar
PROGRESS = re.compile(r"^\s*\d+/\d+ .*step")  # one line of Keras's progress bar
LOG = re.compile(r"^(WARNING: All log messages|[IWE]\d{4} |\[IPKernelApp\])")  # C++ logs


def in_256_colours(png):
    """A base64 PNG again with a palette of 256 colours: photos and heatmaps in a quarter of
    the bytes (04's figures: 3.5 MB -> 0.9 MB), so that GitHub shows the notebook."""
    import base64
    import io

    from PIL import Image

    buffer = io.BytesIO()
    image = Image.open(io.BytesIO(base64.b64decode(png))).convert("RGB")
    image.quantize(256).save(buffer, "PNG", optimize=True)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def readable(notebook):
    """``notebook`` as a reader on GitHub should see its outputs: none for the set-up cell
    (this machine's paths and start-up lines), no C++ log lines, each Keras progress bar as
    its last line (papermill stores every step's line), figures in 256 colours."""
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        if "setup" in cell.metadata.get("tags", []):
            cell.outputs = []
            continue
        kept = []
        for output in cell.get("outputs", []):
            if output.output_type != "stream":
                if "image/png" in output.get("data", {}):
                    output.data["image/png"] = in_256_colours(output.data["image/png"])
                kept.append(output)
                continue
            lines = [line for line in ANSI.sub("", output.text).splitlines(keepends=True)
                     if not LOG.match(line)]  # fmt: skip
            if kept and kept[-1].output_type == "stream" and kept[-1].name == output.name:
                kept[-1].text += "".join(lines)
            elif lines:
                output.text = "".join(lines)
                kept.append(output)
        for output in kept:
            if output.output_type == "stream":
                lines = output.text.splitlines(keepends=True)
                output.text = "".join(
                    line for i, line in enumerate(lines)
                    if not (PROGRESS.match(line) and i + 1 < len(lines)
                            and PROGRESS.match(lines[i + 1]))
                )  # fmt: skip
        cell.outputs = [o for o in kept if o.output_type != "stream" or o.text.strip()]
    return notebook


def store_run_outputs(photos, run):
    """Run ``RUN_OUTPUTS`` on ``photos`` with the finished ``run`` and store their outputs."""
    import tempfile

    parameters, note = run_parameters(photos, run), outputs_note(photos, run)
    with tempfile.TemporaryDirectory() as folder:
        for name in RUN_OUTPUTS:
            executed = execute(NOTEBOOKS_DIR / name, Path(folder) / name, parameters)
            nbformat.write(with_outputs_note(readable(executed), note), NOTEBOOKS_DIR / name)
            print(f"reran {name}: {sum(map(bool, printed(executed)))} cells printed something")


def synced_notebook(notebook, notebook_name):
    """A copy of ``notebook`` as it should be stored in the repository."""
    tags = {tag for cell in notebook.cells for tag in cell.metadata.get("tags", [])}
    missing = [tag for tag in REQUIRED_TAGS if tag not in tags]
    if missing:
        raise ValueError(f"{notebook_name} has no cell tagged {', '.join(missing)}")
    code_tags = [c.metadata.get("tags", []) for c in notebook.cells if c.cell_type == "code"]
    if "parameters" not in code_tags[0] or "setup" not in code_tags[1]:
        raise ValueError(
            f"{notebook_name}: the first code cell must be the parameters cell and the second "
            "the set-up cell (the set-up reads KEEP_ON_DRIVE and REQUIRE_GPU)"
        )
    (form,) = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    problems = form_problems(form.source)
    if problems:
        raise ValueError(f"{notebook_name}, the parameters cell: {'; '.join(problems)}")
    parameters = parameter_names(notebook)
    synced = copy.deepcopy(notebook)
    keeps = keeps_outputs(notebook, notebook_name)
    synced.cells = [synced_cell(c, notebook_name, parameters, keeps) for c in notebook.cells]
    synced.metadata = {
        **colab_metadata(notebook_name),
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    return synced


def differences(old, new):
    """Human-readable reasons why notebook ``old`` is not stored as ``new``."""
    if len(old.cells) != len(new.cells):
        return ["the number of cells changed"]
    found = []
    for index, (a, b) in enumerate(zip(old.cells, new.cells, strict=True)):
        label = f"cell {index} ({', '.join(a.metadata.get('tags', [])) or a.cell_type})"
        if a.source != b.source:
            found.append(f"{label}: text differs from what the package generates")
        if a.get("outputs") != b.get("outputs") or a.get("execution_count"):
            found.append(f"{label}: outputs or execution count not as stored")
        if a.metadata != b.metadata:
            found.append(f"{label}: metadata other than tags")
    if old.metadata != new.metadata:
        found.append("notebook metadata other than the kernel")
    return found or ["JSON layout (run the script to rewrite it)"]


def sync(path, check):
    """Sync one file (a notebook, or a Markdown file with Colab links); return its problems."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".ipynb":
        notebook = nbformat.reads(text, as_version=4)
        synced = synced_notebook(notebook, path.name)
        new_text = nbformat.writes(synced) + "\n"
        reasons = differences(notebook, synced) if new_text != text else []
    else:
        new_text = with_notebooks_table(with_current_colab_urls(text))
        reasons = ["a Colab address or the table of notebooks is out of date"]
        reasons = reasons if new_text != text else []
    if reasons and not check:
        path.write_text(new_text, encoding="utf-8")
    return [f"{path.name}: {reason}" for reason in reasons]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing, exit 1 if stale")
    parser.add_argument(
        "--outputs", action="store_true", help=f"rerun {', '.join(KEEPS_OUTPUTS)} to store outputs"
    )
    parser.add_argument(
        "--photos", type=Path, help=f"with --outputs: also rerun {', '.join(RUN_OUTPUTS)} on "
        "this folder of labelled photos, with --run"
    )  # fmt: skip
    parser.add_argument("--run", type=Path, help="the finished training run they show")
    parser.add_argument(
        "paths", nargs="*", type=Path, help="notebooks or Markdown files (default: all, README)"
    )
    args = parser.parse_args(argv)
    if (args.photos is None) != (args.run is None) or (args.photos and not args.outputs):
        parser.error("--photos and --run go together, with --outputs")
    if args.photos:
        store_run_outputs(args.photos, args.run)
    if args.outputs:
        for name in KEEPS_OUTPUTS:
            executed = execute(NOTEBOOKS_DIR / name, NOTEBOOKS_DIR / name)
            print(f"reran {name}: {sum(map(bool, printed(executed)))} cells printed something")
    paths = args.paths or [*sorted(NOTEBOOKS_DIR.glob("*.ipynb")), README]
    problems = [problem for path in paths for problem in sync(path, args.check)]
    for problem in problems:
        print(("out of sync: " if args.check else "rewrote: ") + problem)
    if args.check and problems:
        print("Run `python scripts/sync_notebooks.py` and commit the result.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
