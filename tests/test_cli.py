"""The command line starts fast and quietly: TensorFlow only for the commands that need it.

Each check runs ``python -m densenet_tutorial`` (or its ``main``) in a fresh process, as a
learner would; this test process has long imported TensorFlow, so only a fresh one can tell.
"""

import subprocess
import sys

import pytest

from densenet_tutorial.data import synthesize

HEAVY = ("tensorflow", "keras")


def run_python(code, cwd):
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def imported_after(argv, cwd):
    """Run ``main(argv)`` in a fresh process; return its output and the heavy modules loaded."""
    code = (
        "import sys\nfrom densenet_tutorial.cli import main\n"
        f"status = main({argv!r})\n"
        f"print('HEAVY', [name for name in {HEAVY!r} if name in sys.modules], status)\n"
    )
    done = run_python(code, cwd)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done


def test_help_imports_no_tensorflow(tmp_path):
    code = (
        "import sys\nfrom densenet_tutorial.cli import build_parser\n"
        "for command in (None, 'train', 'prepare', 'summary', 'demo', 'explain', 'synth'):\n"
        "    try:\n"
        "        build_parser().parse_args([command, '--help'] if command else ['--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        f"print('HEAVY', [name for name in {HEAVY!r} if name in sys.modules])\n"
    )
    done = run_python(code, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "HEAVY []" in done.stdout
    assert "--quick" in done.stdout and "DenseNet-169" in done.stdout
    assert done.stderr == ""  # no start-up lines of any library


def test_train_help_shows_the_defaults_training_uses(capsys):
    from densenet_tutorial import config
    from densenet_tutorial.cli import main

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    quick, steps = config.QUICK, config.QUICK_STEPS_PER_EPOCH
    assert f"{quick['image_size']} px" in shown and f"growth rate {quick['growth_rate']}" in shown
    assert f"{quick['epochs']} epochs of at most {steps} steps" in shown
    default = config.RunConfig()
    assert f"({default.batch_size})" in shown and f"({default.seed})" in shown


def test_prepare_imports_no_tensorflow_and_prints_no_library_noise(tmp_path):
    synthesize(tmp_path / "images", 20, size=(48, 36))
    argv = ["prepare", "--source", str(tmp_path / "images"), "--out", str(tmp_path / "out"),
            "--val-per-class", "4", "--test-per-class", "4"]  # fmt: skip
    done = imported_after(argv, tmp_path)
    assert "HEAVY [] 0" in done.stdout
    assert (tmp_path / "out" / "splits" / "train.csv").exists()
    assert "cuda" not in done.stderr.lower() and "absl" not in done.stderr


def test_commands_that_need_tensorflow_start_it_without_its_start_up_noise(tmp_path):
    """On this CPU machine TensorFlow writes "Could not find cuda drivers" and more at start."""
    command = [sys.executable, "-m", "densenet_tutorial", "summary", "--blocks", "1,1",
               "--growth-rate", "4", "--image-size", "32"]  # fmt: skip
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Parameters: 2,939" in done.stdout
    assert done.stderr == ""


def test_only_the_start_up_noise_is_held_back(capfd):
    import os

    from densenet_tutorial.cli import without_start_up_noise

    with without_start_up_noise():
        os.write(2, b"I0000 00:00:1.2 7 cudart_stub.cc:31] Could not find cuda drivers\n")
        os.write(2, b"E0000 00:00:1.3 7 some_kernel.cc:9] a real error\n")
        print("a Python warning", file=sys.stderr)
    shown = capfd.readouterr().err.splitlines()
    assert sorted(shown) == ["E0000 00:00:1.3 7 some_kernel.cc:9] a real error", "a Python warning"]
