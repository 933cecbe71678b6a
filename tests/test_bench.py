"""The costs and the benchmarks: they run end to end, their counts agree with independent ones.

No timing is asserted: speed is what the benchmark reports, not what tests check. The tiny
run exercises every part (fresh worker processes, ratios, table, JSON) so it cannot rot.
"""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.compare import PARTS, median, run_bench
from benchmarks.report import format_table
from densenet_tutorial import costs, hardware
from densenet_tutorial.costs import count_multiply_adds, growth_rate_table, keras_reference
from densenet_tutorial.errors import SettingError
from densenet_tutorial.model import DENSENET121, build_densenet, densenet121, densenet169

TINY_BLOCKS = (1, 1, 1, 1)
TINY_SIZE = 32
ROOT = Path(__file__).resolve().parent.parent


def paper_multiply_adds(blocks, growth_rate, size, compression=0.5, bottleneck_width=4):
    """Multiply-adds of a DenseNet-BC's convolutions and one-logit classifier, by hand.

    Written from the paper's Table 1, independently of the Keras layers: 7x7/2 stem conv to 2k
    channels (padding 3) and 3x3/2 max pool (padding 1); per dense layer a 1x1 conv from c to
    4k channels and a 3x3 conv from 4k to k; per transition a 1x1 conv from c to floor(c/2),
    then 2x2 average pooling.
    """
    side = (size + 6 - 7) // 2 + 1
    total = side * side * 7 * 7 * 3 * 2 * growth_rate
    side = (side + 2 - 3) // 2 + 1
    channels = 2 * growth_rate
    width = bottleneck_width * growth_rate
    for b, layers in enumerate(blocks):
        for _ in range(layers):
            total += side * side * (channels * width + 3 * 3 * width * growth_rate)
            channels += growth_rate
        if b < len(blocks) - 1:
            out = math.floor(compression * channels)
            total += side * side * channels * out
            channels, side = out, side // 2
    return total + channels  # the Dense layer: channels -> 1 logit


@pytest.mark.parametrize(
    "blocks, growth_rate, size", [((2, 3), 4, 37), ((1, 2, 1), 8, 45), ((3, 1, 2, 2), 6, 64)]
)
def test_multiply_adds_match_the_paper_arithmetic(blocks, growth_rate, size):
    model = build_densenet(blocks, growth_rate, input_shape=(size, size, 3))
    assert count_multiply_adds(model) == paper_multiply_adds(blocks, growth_rate, size)


def test_memory_efficient_model_counts_the_same_multiply_adds():
    """The recomputed bottlenecks are nested layers: they must be counted too."""
    blocks, shape = (2, 2), (40, 40, 3)
    plain = build_densenet(blocks, 8, input_shape=shape)
    efficient = build_densenet(blocks, 8, input_shape=shape, memory_efficient=True)
    assert count_multiply_adds(efficient) == count_multiply_adds(plain)


def test_densenet169_is_the_papers_3_4_gflops():
    """Huang et al. give DenseNet-169 about 3.4 G multiply-adds ("FLOPs") at 224 px."""
    multiply_adds = count_multiply_adds(densenet169(input_shape=(224, 224, 3)))
    assert multiply_adds == paper_multiply_adds((6, 12, 32, 32), 32, 224)
    assert 3.3e9 < multiply_adds < 3.5e9


def test_repeats_are_summarised_by_their_median():
    runs = [
        {"step_time_s": 2.0, "rates": [10.0, 50.0], "params": 7, "policy": "float32"},
        {"step_time_s": 9.0, "rates": [30.0, 40.0], "params": 7, "policy": "float32"},
        {"step_time_s": 3.0, "rates": [20.0, 60.0], "params": 7, "policy": "float32"},
    ]
    assert median(runs) == {
        "step_time_s": 3.0, "rates": [20.0, 50.0], "params": 7, "policy": "float32"
    }  # fmt: skip


def test_unknown_part_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown benchmark part"):
        run_bench(parts=("model", "speed"))


@pytest.fixture(scope="module")
def tiny_bench(tmp_path_factory):
    """``python -m benchmarks`` once, tiny: every part but the keras.applications one (its
    DenseNets are too big to trace in a test), one warm-up and one timed step each.

    Growth rate 32 is our DenseNet of the other parts, so the growth part adds one process.
    """
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    parts = ",".join(part for part in PARTS if part != "model")
    command = [
        sys.executable, "-m", "benchmarks", "--image-size", str(TINY_SIZE), "--parts", parts,
        "--batch-size", "2", "--steps", "1", "--warmup", "1", "--blocks", "1,1,1,1",
        "--growth-rates", "4", "32", "--pipeline-images", "20", "--json", str(out),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text()), done.stdout


def training_runs(result):
    """Every run that built and timed a DenseNet's training model, with its label."""
    for part in ("memory", "precision", "augmentation"):
        yield from result[part]["runs"].items()
    for row in result["growth"]["rows"]:
        yield f"k={row['growth_rate']}", row


def test_tiny_bench_has_every_part_and_sane_figures(tiny_bench):
    result, stdout = tiny_bench
    assert set(PARTS) - {"model"} <= set(result)
    for label, run in training_runs(result):
        assert run["step_time_s"] > 0 and run["first_step_s"] > 0, label
        assert run["images_per_second"] == pytest.approx(2 / run["step_time_s"]), label
        assert run["peak_memory_mb"] >= run["memory_before_training_mb"] > 0, label
    for part in ("memory", "precision", "pipeline", "augmentation"):
        assert result[part]["ratios"], part
        for name, value in result[part]["ratios"].items():
            assert math.isfinite(value) and value > 0, (part, name)
    import tensorflow as tf

    gpu = bool(tf.config.list_physical_devices("GPU"))
    for label, run in training_runs(result):  # what each step ran with: as fit runs it here
        assert run["xla"] is (gpu and label != "Keras layers (before)"), label
        assert run["peak_memory_of"] == ("GPU:0" if gpu else "process (RSS)"), label
    augmentations = {label: run["augmentation"] for label, run in training_runs(result)}
    assert augmentations.pop("Keras layers (before)") == "keras_layers_augmentation"
    assert augmentations.pop("no augmentation") is None
    assert set(augmentations.values()) == {"augmentation"}  # every other run: as train has it
    assert result["augmentation"]["ratios"]["cpu_time_per_step_vs_before"] > 0
    pipelines = result["pipeline"]["runs"]["pipelines"]
    assert len(pipelines) == 3
    for rates in pipelines.values():
        assert len(rates) == 2 and all(rate > 0 for rate in rates)
    assert stdout.rstrip().endswith(format_table(result).rstrip())


def test_tiny_bench_measures_the_models_it_names(tiny_bench):
    """Parameters and multiply-adds of every run equal those of the model it claims to be."""
    result, _ = tiny_bench
    shape = (TINY_SIZE, TINY_SIZE, 3)
    for label, run in training_runs(result):
        growth_rate = int(label[2:]) if label.startswith("k=") else 32
        model = build_densenet(TINY_BLOCKS, growth_rate, input_shape=shape)
        assert run["params"] == model.count_params(), label
        assert run["multiply_adds"] == paper_multiply_adds(TINY_BLOCKS, growth_rate, TINY_SIZE)
    policies = {run["policy"] for _, run in result["precision"]["runs"].items()}
    assert "float32" in policies and len(result["precision"]["runs"]) >= 2


def test_a_bad_setting_in_a_worker_is_a_clear_error():
    """The worker builds the model; its SettingError reaches the caller as one line."""
    with pytest.raises(SettingError, match="at least 29x29 pixels"):
        run_bench(parts=("memory",), image_size=8, blocks=TINY_BLOCKS, batch_size=1, steps=1)


def test_keras_reference_is_our_network_and_trains_in_the_same_harness():
    """keras.applications' DenseNet-121 with our input scaling and head: same parameters, and
    the benchmark's measurement runs on it (one step, in this process)."""
    shape = (TINY_SIZE, TINY_SIZE, 3)
    assert (
        keras_reference(DENSENET121, shape).count_params()
        == densenet121(input_shape=shape).count_params()
    )
    run = costs.measure_training(DENSENET121, 32, TINY_SIZE, batch_size=1, steps=1, warmup=0,
                                 reference=True)  # fmt: skip
    assert run["model"] == "keras_applications_densenet" and run["step_time_s"] > 0
    with pytest.raises(SettingError, match="keras.applications has DenseNets"):
        keras_reference(TINY_BLOCKS, shape)


def test_growth_rate_table_needs_a_timed_step():
    with pytest.raises(SettingError, match="at least one training step"):
        growth_rate_table((4,), TINY_BLOCKS, TINY_SIZE, steps=0)


def test_peak_memory_falls_back_where_the_peak_cannot_be_reset(monkeypatch):
    """Locked-down containers refuse writing /proc/self/clear_refs: no timed-steps peak then."""

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(hardware.Path, "write_text", refuse)
    assert hardware.reset_peak_rss() is False
    run = costs.measure_training(TINY_BLOCKS, 4, TINY_SIZE, batch_size=1, steps=1, warmup=1)
    assert run["timed_steps_peak_memory_mb"] is None and run["peak_memory_mb"] > 0
