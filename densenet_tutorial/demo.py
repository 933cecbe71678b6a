"""The offline demo: the whole notebook sequence, run in quick mode, with everything it shows.

``python -m densenet_tutorial demo`` executes ``notebooks/01_*.ipynb`` ... ``05_*.ipynb`` in
order with papermill and ``QUICK = True``: generated images and small sizes, so it needs
neither Kaggle nor a GPU. The executed copies (with their outputs) and every figure they
drew are saved under ``runs/demo/``. The tests run the notebooks the same way.
"""

import base64
import time
from pathlib import Path

from densenet_tutorial.errors import MissingInputError, RunError
from densenet_tutorial.project import notebooks_dir, runs_dir


def notebook_paths():
    """The notebooks of the sequence, in order (``01_data.ipynb`` ...)."""
    return sorted(notebooks_dir().glob("[0-9][0-9]_*.ipynb"))


def run_notebook(notebook, out_dir, parameters):
    """Execute ``notebook`` with papermill; save the executed copy in ``out_dir``.

    Only the ``parameters`` the notebook declares in its cell tagged ``parameters`` are
    injected. A failing cell raises ``papermill.PapermillExecutionError``, naming the cell.
    """
    try:
        import papermill
    except ImportError:
        raise MissingInputError(
            "Running notebooks needs papermill and a Jupyter kernel: "
            "pip install -e '.[notebooks]' (or pip install -r requirements.txt)."
        ) from None

    declared = papermill.inspect_notebook(str(notebook))
    executed = Path(out_dir) / Path(notebook).name
    papermill.execute_notebook(
        str(notebook),
        str(executed),
        parameters={name: value for name, value in parameters.items() if name in declared},
        cwd=str(Path(notebook).resolve().parent.parent),
        kernel_name="python3",
        progress_bar=False,
    )
    return executed


def save_figures(executed, figures_dir):
    """Write every PNG an executed notebook displayed as ``figures_dir/NAME_N.png``."""
    import nbformat

    notebook = nbformat.read(executed, as_version=4)
    images = [
        output["data"]["image/png"]
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if "image/png" in output.get("data", {})
    ]
    figures_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, image in enumerate(images, start=1):
        path = figures_dir / f"{Path(executed).stem}_{number}.png"
        path.write_bytes(base64.b64decode(image))
        paths.append(path)
    return paths


def quick_parameters(out_dir, data_dir=None):
    """Quick mode, with training runs under ``out_dir`` and data under ``data_dir``."""
    parameters = {"QUICK": True, "RUNS_DIR": str(out_dir)}
    if data_dir is not None:
        parameters["DATA_DIR"] = str(data_dir)
    return parameters


def demo(out_dir=None, data_dir=None):
    """Run every notebook in quick mode; return the seconds each took, by notebook name.

    ``out_dir`` (default ``runs/demo``) receives the executed notebooks, ``figures/`` and
    the training runs; ``data_dir`` (default ``data``) the generated images.
    """
    from papermill import PapermillExecutionError

    out_dir = Path(out_dir or runs_dir() / "demo").resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    parameters = quick_parameters(out_dir, data_dir)
    seconds = {}
    for notebook in notebook_paths():
        print(f"Running {notebook.name} (quick mode) ...", flush=True)
        start = time.perf_counter()
        try:
            executed = run_notebook(notebook, out_dir, parameters)
        except PapermillExecutionError as error:
            raise RunError(
                f"{notebook.name} failed in cell [{error.exec_count}]: {error.ename}: "
                f"{error.evalue}. The executed copy, with the error, is in {out_dir}."
            ) from None
        seconds[notebook.name] = time.perf_counter() - start
        figures = save_figures(executed, out_dir / "figures")
        print(f"  {seconds[notebook.name]:.0f} s, {len(figures)} figures -> {executed}")
    print(
        f"Demo finished in {sum(seconds.values()):.0f} s. Open the executed notebooks in {out_dir}"
    )
    return seconds
