"""The offline demo: the whole notebook sequence, run in quick mode, with everything it shows.

``python -m densenet_tutorial demo`` executes every notebook with papermill and
``QUICK = True``: generated images and small sizes, so it needs neither Kaggle nor a GPU. Two
run at a time, each as soon as the notebooks it uses have run (``NEEDS``). The executed copies
(with their outputs) and every figure they drew are saved under ``runs/demo/``, and it ends
with a table of the seconds each notebook took and the machine they were measured on. The
tests run the notebooks the same way (``run_notebook``), one after another.

Each notebook runs in a Jupyter kernel of its own. What the kernel's C++ libraries write
straight to the terminal (TensorFlow's start-up lines, such as "Could not find cuda drivers"
on a machine without a GPU) goes to the kernel's log beside the executed copy
(``runs/demo/01_data.log`` ...), not into the notebook or onto the console; what the
notebook's Python code prints, warnings included, stays in the notebook.
"""

import base64
import concurrent.futures
import multiprocessing
import os
import resource
import sys
import time
import traceback
from pathlib import Path

from densenet_tutorial.errors import MissingInputError, RunError
from densenet_tutorial.hardware import cpu_info
from densenet_tutorial.project import notebooks_dir, runs_dir


def notebook_paths():
    """The notebooks of the sequence, in order (``01_data.ipynb`` ...)."""
    return sorted(notebooks_dir().glob("[0-9][0-9]_*.ipynb"))


def kernel_manager_logging_to(log):
    """A Jupyter kernel manager whose kernels write their own output to ``log``.

    ``log`` is an open file; it receives the kernel process's standard output and error, so
    the C++ libraries' lines land there, and so do ipykernel's own warnings (such as "Kernel
    is running over TCP without encryption", about its local ports). The notebook's own
    output is unchanged, because the kernel is started with
    ``--IPKernelApp.capture_fd_output=False``: ipykernel then leaves the process's file
    descriptors alone and forwards only what Python code prints.
    """
    from jupyter_client import AsyncKernelManager

    class KernelManager(AsyncKernelManager):
        async def start_kernel(self, **kwargs):
            arguments = [
                *kwargs.pop("extra_arguments", []),
                "--IPKernelApp.capture_fd_output=False",
            ]
            return await super().start_kernel(
                extra_arguments=arguments, stdout=log, stderr=log, **kwargs
            )

    return KernelManager


def run_notebook(notebook, out_dir, parameters):
    """Execute ``notebook`` with papermill; save the executed copy in ``out_dir``.

    Only the ``parameters`` the notebook declares in its cell tagged ``parameters`` are
    injected. A failing cell raises ``papermill.PapermillExecutionError``, naming the cell.
    The kernel's own log goes to ``out_dir/NAME.log`` (see ``kernel_manager_logging_to``).
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
    with open(executed.with_suffix(".log"), "wb") as log:
        papermill.execute_notebook(
            str(notebook),
            str(executed),
            parameters={name: value for name, value in parameters.items() if name in declared},
            cwd=str(Path(notebook).resolve().parent.parent),
            kernel_name="python3",
            progress_bar=False,
            kernel_manager_class=kernel_manager_logging_to(log),
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


# What a notebook uses that an earlier one makes, by number: 03 trains on 01's split, and 04,
# 05 and 06 use the run 03 trained (its model, its growth rate, its test accuracy). In quick
# mode each would make a missing one itself, so these wait for it; the others run beside them.
NEEDS = {"03": ("01",), "04": ("03",), "05": ("03",), "06": ("03",)}


def demo(out_dir=None, data_dir=None, jobs=None):
    """Run every notebook in quick mode; return the seconds each took, by notebook name.

    ``out_dir`` (default ``runs/demo``) receives the executed notebooks, ``figures/`` and
    the training runs; ``data_dir`` (default ``data``) the generated images. ``jobs``
    notebooks run at a time (default 2, or 1 on a single vCPU), each in a process of its own,
    as soon as what it ``NEEDS`` is there: tracing TensorFlow's graphs, much of a quick run,
    keeps one core busy, so two notebooks share two vCPUs well. In parallel the later
    notebooks, which take longest, start first.
    """
    out_dir = Path(out_dir or runs_dir() / "demo").resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    parameters = quick_parameters(out_dir, data_dir)
    jobs = jobs or min(2, os.cpu_count() or 1)
    waiting, running, failed = notebook_paths(), {}, []
    present = {path.name[:2] for path in waiting}
    seconds, cpu_seconds, load, began = {}, {}, [os.getloadavg()[0]], time.perf_counter()
    context = multiprocessing.get_context("spawn")  # a clean process for each notebook
    with concurrent.futures.ProcessPoolExecutor(jobs, context, max_tasks_per_child=1) as pool:
        while waiting and not failed or running:
            finished = {name[:2] for name in seconds}
            ready = [
                path
                for path in waiting
                if set(NEEDS.get(path.name[:2], ())) & present <= finished and not failed
            ]
            for notebook in sorted(ready, reverse=jobs > 1)[: jobs - len(running)]:
                print(f"Running {notebook.name} (quick mode) ...", flush=True)
                future = start_notebook(pool, notebook, out_dir, parameters)
                running[future] = (notebook, time.perf_counter())
                waiting.remove(notebook)
            future, code, cpu = wait_for_one(running)
            notebook, start = running.pop(future)
            seconds[notebook.name], cpu_seconds[notebook.name] = time.perf_counter() - start, cpu
            load.append(os.getloadavg()[0])
            if code != 0:
                failed.append(notebook.name)
            else:
                figures = save_figures(out_dir / notebook.name, out_dir / "figures")
                print(f"  {notebook.name}: {seconds[notebook.name]:.0f} s, {len(figures)} figures")
    if failed:
        raise RunError(
            f"{', '.join(failed)} failed (the cell and the error are above); the executed "
            f"copy, with the error, is in {out_dir}."
        )
    elapsed = time.perf_counter() - began
    print(format_times(seconds, cpu_seconds, elapsed, jobs, load))
    print(f"Open the executed notebooks in {out_dir}")
    return seconds


def start_notebook(pool, notebook, out_dir, parameters):
    """``run_one`` for ``notebook`` in a process of ``pool``: a future of ``(exit status, CPU
    seconds)``, as ``in_worker`` returns them."""
    return pool.submit(in_worker, run_one, notebook, out_dir, parameters)


def in_worker(function, *args):
    """``function(*args)`` in a worker process of its own; return its result and the CPU
    seconds (user + system) of the worker and of every process it started and waited for: the
    notebook's kernel, and the kernel's own (the checking workers, notebook 05's measuring
    processes). The pool gives each worker one task, so the seconds are that task's alone."""
    result = function(*args)
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return result, sum(used.ru_utime + used.ru_stime for used in usage)


def wait_for_one(running):
    """Wait until one of the futures ``running`` is done; return it, its exit status and CPU
    seconds (a worker that raised instead: its traceback printed, status 1)."""
    done, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
    future = next(iter(done))
    try:
        return future, *future.result()
    except Exception:  # a bug in the worker (its notebook's errors are status 2)
        traceback.print_exc()
        return future, 1, 0.0


def run_one(notebook, out_dir, parameters):
    """One notebook of the demo, in a process of its own (``start_notebook``): 0, or 2 if a
    cell failed (said in one line)."""
    from papermill import PapermillExecutionError

    try:
        run_notebook(Path(notebook), out_dir, parameters)
    except PapermillExecutionError as error:
        print(
            f"error: {Path(notebook).name} failed in cell [{error.exec_count}]: {error.ename}: "
            f"{error.evalue}",
            file=sys.stderr,
        )
        return 2
    return 0


VECTOR_UNITS = (("avx512_bf16", "AVX-512 with bfloat16"), ("avx512f", "AVX-512"), ("avx2", "AVX2"))


def machine():
    """The CPU in a few words: model, vCPUs, and the vector instructions that set its speed."""
    info = cpu_info()
    vector = next((name for flag, name in VECTOR_UNITS if flag in info["flags"]), "no AVX2")
    return f"{info['name'] or 'unknown CPU'}, {os.cpu_count()} vCPUs, {vector}"


def format_times(seconds, cpu_seconds, elapsed, jobs, load):
    """The demo's closing table: wall and CPU seconds per notebook, the whole, the machine.

    CPU seconds are those of the notebook's process, its kernel and the processes the kernel
    started; ``elapsed`` is the demo's wall time, with ``jobs`` notebooks at a time. ``load``
    is the 1-minute load average before the first notebook and after each: above the number
    of vCPUs, other work shared the machine, and the wall times grow with it while the CPU
    times (the work the notebook itself did) change much less.
    """
    width = max([len(name) for name in seconds] + [len("notebook")])
    lines = [f"{'notebook':<{width}}  seconds  CPU seconds", f"{'-' * width}  -------  -----------"]
    lines += [
        f"{name:<{width}}  {seconds[name]:7.0f}  {cpu_seconds[name]:11.0f}"
        for name in sorted(seconds)
    ]
    everything = f"all, {jobs} at a time"
    lines.append(f"{everything:<{width}}  {elapsed:7.0f}  {sum(cpu_seconds.values()):11.0f}")
    lines.append(
        f"Measured on {machine()}; load average {min(load):.1f} to {max(load):.1f} "
        f"(1 minute) while it ran."
    )
    return "\n".join(lines)
