"""The time plan: measured on the run's own model and input stream, nothing trained or written."""

import numpy as np
import pytest
import tensorflow as tf
from helpers import small_split

from densenet_tutorial import timeplan, training
from densenet_tutorial.cli import main
from densenet_tutorial.config import run_config

TINY = run_config(True, image_size=32, blocks=(2, 2, 2), growth_rate=8, batch_size=16, epochs=5,
                  seed=1)  # fmt: skip


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    return small_split(tmp_path_factory.mktemp("plan"))


def listing(folder):
    return sorted((path, path.stat().st_mtime_ns) for path in folder.rglob("*"))


def test_estimate_measures_the_first_minutes_and_writes_nothing(split, tmp_path, capsys):
    before = listing(split)
    plan = timeplan.estimate(split, TINY)
    assert listing(split) == before  # nothing written, not even beside the split
    assert 0 < plan["seconds_to_first_batch"] < 60
    for name in ("pipeline", "training", "validation"):
        assert plan[f"{name}_images_per_second"] > 0, name
    # The first call of each step holds its trace (and compile): longer than a steady call.
    assert plan["first_training_step_seconds"] > 16 / plan["training_images_per_second"]
    assert plan["compile_seconds"] > 0
    slowest = min(plan["pipeline_images_per_second"], plan["training_images_per_second"])
    steps = training.training_steps(len(training.read_split(split / "splits", "train")[1]), 16)
    first = plan["seconds_to_first_batch"] + plan["compile_seconds"] + steps * 16 / slowest
    assert plan["minutes_first_epoch"] * 60 >= first
    later = plan["minutes_per_later_epoch"]
    assert plan["minutes_total"] == pytest.approx(plan["minutes_first_epoch"] + 4 * later)
    assert plan["peak_memory_mb"] > 0
    # The step timed is the one fit runs: augmentation, precision, Keras's XLA decision.
    gpu = bool(tf.config.list_physical_devices("GPU"))
    assert plan["augmentation"] == "augmentation" and plan["xla"] is gpu
    assert plan["policy"] == training.pick_precision()
    assert plan["device"] == ("GPU:0" if gpu else "CPU")
    out = tmp_path / "planned"
    assert main(["train", "--data", str(split), "--out", str(out), "--quick", "--estimate",
                 "--image-size", "32", "--blocks", "2,2,2", "--epochs", "2"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "limited by the" in printed and not out.exists()
    assert f"XLA {'on' if gpu else 'off'}, augmentation in the step" in printed
    assert "first batch after" in printed and "every resumed run" in printed
    assert "not measured: writing each epoch's training state" in printed
    assert ("a GPU's speed" in printed) is not gpu


def test_the_plan_times_a_batch_of_the_runs_own_stream():
    """A stand-in model whose steps take known times, and a stream whose first batch waits."""

    class Model:
        augmentation, jit_compile = None, False
        dtype_policy = type("Policy", (), {"name": "float32"})
        calls = 0

        def train_on_batch(self, images, labels):
            Model.calls += 1
            wait(0.3 if Model.calls == 1 else 0.01)  # a first call that compiles

        def test_on_batch(self, images, labels):
            wait(0.005)

    def wait(seconds):
        import time

        time.sleep(seconds)

    batch = (np.zeros((4, 2, 2, 3), np.uint8), np.zeros(4, np.float32))
    slow_start = tf.data.Dataset.range(50).map(
        lambda i: tf.py_function(lambda j: wait(0.2 if j == 0 else 0) or j, [i], tf.int64)
    )
    train = slow_start.map(lambda _: batch)
    val = tf.data.Dataset.from_tensors(batch).repeat(3)
    plan = timeplan.time_plan(Model(), lambda: train, val, steps_per_epoch=10, epochs=3, steps=5)
    assert plan["seconds_to_first_batch"] >= 0.2
    assert plan["first_training_step_seconds"] >= 0.3
    assert 4 / 0.01 * 0.25 < plan["training_images_per_second"] <= 4 / 0.01  # a loaded machine
    assert plan["compile_seconds"] == pytest.approx(0.29, abs=0.1)
