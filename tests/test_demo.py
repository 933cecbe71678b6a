"""The demo's plumbing: what reaches the notebook, the console and the kernel's log; its table.

The notebooks themselves run in tests/test_notebooks.py; here a two-line notebook stands in
for them, so the kernel's behaviour is checked in seconds.
"""

import concurrent.futures
import multiprocessing
import subprocess
import sys

import nbformat
import pytest

from densenet_tutorial import demo
from densenet_tutorial.errors import RunError

# os.write(2, ...) is what a C++ library does (TensorFlow's "Could not find cuda drivers");
# warnings.warn and print are what the notebook's Python code does.
CELL = """\
import os, sys, warnings
os.write(2, b"written by a C++ library\\n")
warnings.warn("a warning from Python code")
print("printed by the notebook", "ipykernel" in sys.modules)
"""


def test_cpu_time_of_a_notebook_process_includes_the_processes_it_waited_for():
    grandchild = [sys.executable, "-c", "sum(range(10**7))"]
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, context, max_tasks_per_child=1) as pool:
        running = {pool.submit(demo.in_worker, subprocess.call, grandchild): None}
        finished, code, cpu = demo.wait_for_one(running)
    assert finished in running and code == 0
    assert cpu > 0.1  # the grandchild's sum alone takes longer than that


NAMES = ["01_data.ipynb", "02_model.ipynb", "03_train.ipynb", "04_maps.ipynb",
         "05_growth.ipynb", "06_pretrained.ipynb"]  # fmt: skip


def run_fake_demo(monkeypatch, tmp_path, jobs, fail=None, events=None):
    """The demo's schedule with notebooks that each sleep a moment: (events, result); the
    events go to ``events`` as they happen, if given."""
    events = [] if events is None else events
    wait_for_one = demo.wait_for_one

    def start(pool, notebook, out_dir, parameters):  # a process that sleeps, then exits
        events.append(("start", notebook.name[:2], len(events)))
        code = 1 if notebook.name[:2] == fail else 0
        command = [sys.executable, "-c", f"import time; time.sleep(0.3); exit({code})"]
        return pool.submit(demo.in_worker, subprocess.call, command)

    def wait(running):
        future, code, cpu = wait_for_one(running)
        events.append(("end", running[future][0].name[:2], len(events)))
        return future, code, cpu

    monkeypatch.setattr(demo, "notebook_paths", lambda: [tmp_path / name for name in NAMES])
    monkeypatch.setattr(demo, "start_notebook", start)
    monkeypatch.setattr(demo, "wait_for_one", wait)
    monkeypatch.setattr(demo, "save_figures", lambda executed, figures_dir: [])
    return events, demo.demo(tmp_path / "out", jobs=jobs)


def test_notebooks_run_two_at_a_time_after_what_they_need(monkeypatch, tmp_path, capsys):
    events, seconds = run_fake_demo(monkeypatch, tmp_path, jobs=2)
    assert sorted(seconds) == NAMES
    when = {(kind, number): order for kind, number, order in events}
    for later, earlier in demo.NEEDS.items():
        for need in earlier:
            assert when["start", later] > when["end", need], (later, need)
    running = 0
    for kind, _, _ in events:
        running += 1 if kind == "start" else -1
        assert 0 <= running <= 2
    assert when["start", "06"] < when["start", "04"]  # the longest first
    assert "all, 2 at a time" in capsys.readouterr().out


def test_one_job_runs_the_notebooks_in_order(monkeypatch, tmp_path):
    events, _ = run_fake_demo(monkeypatch, tmp_path, jobs=1)
    assert [number for kind, number, _ in events if kind == "start"] == [
        "01", "02", "03", "04", "05", "06"
    ]  # fmt: skip


def test_a_failed_notebook_stops_those_that_need_it(monkeypatch, tmp_path):
    events = []
    with pytest.raises(RunError, match="03_train.ipynb failed"):
        run_fake_demo(monkeypatch, tmp_path, jobs=2, fail="03", events=events)
    started = {number for kind, number, _ in events if kind == "start"}
    assert "03" in started
    assert not started & {later for later, needs in demo.NEEDS.items() if "03" in needs}


def test_library_lines_go_to_the_kernel_log_and_python_output_stays(tmp_path, capfd):
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(CELL)]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nbformat.write(notebook, tmp_path / "00_stand_in.ipynb")

    executed = demo.run_notebook(tmp_path / "00_stand_in.ipynb", tmp_path, {})

    outputs = nbformat.read(executed, as_version=4).cells[0].outputs
    shown = {output.name: output.text for output in outputs}
    assert shown["stdout"] == "printed by the notebook True\n"
    assert "a warning from Python code" in shown["stderr"]
    assert "C++" not in shown["stderr"]
    assert "written by a C++ library" in (tmp_path / "00_stand_in.log").read_text()
    console = capfd.readouterr()
    assert "C++" not in console.out + console.err
    assert "without encryption" not in console.out + console.err  # ipykernel's, in the log


def test_closing_table_gives_each_notebook_the_whole_and_the_machine():
    seconds = {"02_model.ipynb": 30.0, "01_data.ipynb": 12.4}
    cpu_seconds = {"02_model.ipynb": 21.2, "01_data.ipynb": 9.0}
    lines = demo.format_times(seconds, cpu_seconds, 33.3, 2, [0.5, 2.0, 1.2]).splitlines()
    assert lines[2].split() == ["01_data.ipynb", "12", "9"]
    assert lines[3].split() == ["02_model.ipynb", "30", "21"]
    assert lines[4].split() == ["all,", "2", "at", "a", "time", "33", "30"]
    assert f"{demo.os.cpu_count()} vCPUs" in lines[5] and "load average 0.5 to 2.0" in lines[5]
    assert any(name in lines[5] for _, name in demo.VECTOR_UNITS) or "no AVX2" in lines[5]
