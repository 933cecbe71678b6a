"""The demo's plumbing: what reaches the notebook, the console and the kernel's log; its table.

The notebooks themselves run in tests/test_notebooks.py; here a two-line notebook stands in
for them, so the kernel's behaviour is checked in seconds.
"""

import nbformat

from densenet_tutorial import demo

# os.write(2, ...) is what a C++ library does (TensorFlow's "Could not find cuda drivers");
# warnings.warn and print are what the notebook's Python code does.
CELL = """\
import os, sys, warnings
os.write(2, b"written by a C++ library\\n")
warnings.warn("a warning from Python code")
print("printed by the notebook", "ipykernel" in sys.modules)
"""


def test_cpu_time_of_finished_children_is_counted():
    import subprocess
    import sys

    before = demo.children_cpu_seconds()
    subprocess.run([sys.executable, "-c", "sum(i * i for i in range(3_000_000))"], check=True)
    assert demo.children_cpu_seconds() - before > 0.05


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
    assert "without encryption" not in console.out + console.err  # IPC, not TCP


def test_closing_table_gives_each_notebook_the_total_and_the_machine():
    seconds = {"01_data.ipynb": 12.4, "02_model.ipynb": 30.0}
    cpu_seconds = {"01_data.ipynb": 9.0, "02_model.ipynb": 21.2}
    lines = demo.format_times(seconds, cpu_seconds, [0.5, 2.0, 1.2]).splitlines()
    assert lines[2].split() == ["01_data.ipynb", "12", "9"]
    assert lines[3].split() == ["02_model.ipynb", "30", "21"]
    assert lines[4].split() == ["all", "42", "30"]
    assert f"{demo.os.cpu_count()} vCPUs" in lines[5] and "load average 0.5 to 2.0" in lines[5]
    assert any(name in lines[5] for _, name in demo.VECTOR_UNITS) or "no AVX2" in lines[5]
