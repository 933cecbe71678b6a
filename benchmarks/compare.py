"""The comparisons of ``python -m benchmarks``: each figure in a fresh process, ratios in one run.

Every figure times a training model as ``fit`` runs it (``costs.measure_training``: the
augmentation in the step, the automatic precision, Keras's XLA decision) unless the
comparison changes one of them, and says what it ran with (``policy``, ``xla``,
``augmentation``). A figure needed by two parts (our DenseNet-169 as training runs it is the
baseline of several) is measured once per repeat and shared. With ``repeats`` > 1 the whole
sequence runs that many times, interleaved, so the load of the machine hits every
configuration alike, and each figure is the median over the repeats.
"""

import json
import os
import statistics
import sys
from importlib.metadata import version

from densenet_tutorial.costs import GROWTH_RATES, growth_rate_table, measure_in_fresh_process
from densenet_tutorial.errors import SettingError
from densenet_tutorial.hardware import cpu_name
from densenet_tutorial.model import DENSENET169

PARTS = ("model", "memory", "precision", "pipeline", "augmentation", "growth")
TRAINING = "densenet_tutorial.costs:measure_training"
PIPELINE = "benchmarks.data:measure_pipeline"
KERAS_LAYERS = "benchmarks.legacy:KerasLayersAugmentation"  # the former augmentation
SUMMARY = ("step_time_s", "images_per_second", "peak_memory_mb", "load_average")  # progress


def compare_with_keras(measure, settings):
    """Our DenseNet against keras.applications' with the same head, batch and size."""
    runs = {
        "ours": measure(TRAINING, **settings),
        "keras.applications": measure(TRAINING, **settings, reference=True),
    }
    return comparison(runs, "ours", "keras.applications")


def compare_memory_efficient(measure, settings):
    """``memory_efficient=True`` against ``False`` (Pleiss et al. 2017)."""
    runs = {
        "memory_efficient=True": measure(TRAINING, **settings, memory_efficient=True),
        "memory_efficient=False": measure(TRAINING, **settings),
    }
    return comparison(runs, "memory_efficient=True", "memory_efficient=False")


def compare_precisions(measure, settings):
    """float32 against the policy ``training.pick_precision`` chooses for this machine.

    When that choice is float32 (no bfloat16 instructions found), mixed bfloat16 is measured
    too, so the table shows what the automatic choice avoided.
    """
    runs = {"float32": measure(TRAINING, **settings, precision="float32")}
    auto = measure(TRAINING, **settings)
    runs[f"auto ({auto['policy']})"] = auto
    part = comparison(runs, f"auto ({auto['policy']})", "float32")
    if auto["policy"] == "float32":
        runs["mixed_bfloat16"] = measure(TRAINING, **settings, precision="mixed_bfloat16")
        part["ratios"]["mixed_bfloat16_images_per_second"] = (
            runs["mixed_bfloat16"]["images_per_second"] / runs["float32"]["images_per_second"]
        )
    return part


def compare_augmentation_in_step(measure, settings):
    """A training step with ``augmentation()`` inside it against one without (same batch),
    and against one with the augmentation it replaced (Keras random layers)."""
    runs = {
        "augmentation in the step": measure(TRAINING, **settings),
        "no augmentation": measure(TRAINING, **settings, augment=False),
        "Keras layers (before)": measure(TRAINING, **settings, augment=KERAS_LAYERS),
    }
    part = comparison(runs, "augmentation in the step", "no augmentation")
    before = comparison(runs, "augmentation in the step", "Keras layers (before)")["ratios"]
    part["ratios"].update({f"{name}_vs_before": value for name, value in before.items()})
    return part


def compare_pipelines(measure, images, image_size, batch_size):
    """The training input pipeline now (``make_dataset``: decode, cache, shuffle, uint8) against
    the one before it (the same plus the augmentation in ``tf.data``, on the CPU) and against
    ``image_dataset_from_directory`` with that augmentation (keras.io's recipe), per epoch.
    """
    result = measure(PIPELINE, per_class=images // 2, image_size=image_size,
                     batch_size=batch_size)  # fmt: skip
    rates = result["pipelines"]
    ours, before = rates["make_dataset"], rates["make_dataset + augmentation in tf.data"]
    keras_loader = rates["image_dataset_from_directory + augmentation"]
    ratios = {
        "first_epoch_vs_before": ours[0] / before[0],
        "cached_epoch_vs_before": ours[1] / before[1],
        "first_epoch_vs_keras_loader": ours[0] / keras_loader[0],
        "cached_epoch_vs_keras_loader": ours[1] / keras_loader[1],
    }
    return {"runs": result, "ratios": ratios}


def comparison(runs, subject, baseline):
    """Ratios subject / baseline: step time (wall and CPU), images per second, peak memory."""
    ratios = {
        name: runs[subject][key] / runs[baseline][key]
        for name, key in [
            ("step_time", "step_time_s"),
            ("cpu_time_per_step", "cpu_time_per_step_s"),  # less moved by other processes
            ("images_per_second", "images_per_second"),
            ("peak_memory", "peak_memory_mb"),
            ("timed_steps_peak_memory", "timed_steps_peak_memory_mb"),
        ]
        if runs[baseline][key]
    }
    return {"runs": runs, "ratios": ratios}


def run_bench(
    parts=PARTS, image_size=128, batch_size=32, steps=5, warmup=2, blocks=DENSENET169,
    growth_rates=GROWTH_RATES, pipeline_images=1000, pipeline_size=224, repeats=1,
    progress=print,
):  # fmt: skip
    """Run the chosen ``PARTS``; return their figures and ratios as one JSON-ready dict."""
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise SettingError(f"unknown benchmark part(s) {sorted(unknown)}: choose from {PARTS}.")
    if steps < 1 or warmup < 0 or repeats < 1:
        raise SettingError(
            f"steps={steps}, warmup={warmup}, repeats={repeats}: "
            f"time at least one step (warmup >= 0), at least once."
        )
    settings = dict(blocks=list(blocks), growth_rate=32, image_size=image_size,
                    batch_size=batch_size, steps=steps, warmup=warmup)  # fmt: skip

    def run_parts(measure):
        result = {}
        if "model" in parts:
            result["model"] = compare_with_keras(measure, settings)
        if "memory" in parts:
            result["memory"] = compare_memory_efficient(measure, settings)
        if "precision" in parts:
            result["precision"] = compare_precisions(measure, settings)
        if "pipeline" in parts:
            result["pipeline"] = compare_pipelines(
                measure, pipeline_images, pipeline_size, batch_size
            )
        if "augmentation" in parts:
            result["augmentation"] = compare_augmentation_in_step(measure, settings)
        if "growth" in parts:
            rows = growth_rate_table(growth_rates, blocks, image_size, batch_size, steps,
                                     warmup, measure=measure)  # fmt: skip
            result["growth"] = {"rows": rows}
        return result

    measurements = {}
    for repeat in range(repeats):
        run_parts(recording_measure(measurements, repeat, progress))
    result = run_parts(lambda kind, **given: median(measurements[key_of(kind, given)]))
    settings.update(growth_rates=list(growth_rates), repeats=repeats)
    return {"settings": settings, "machine": machine(), **result}


def key_of(kind, settings):
    return json.dumps([kind, settings], sort_keys=True)


def recording_measure(measurements, repeat, progress):
    """``measure_in_fresh_process`` that appends to ``measurements``, once per figure per repeat."""

    def measure(kind, **settings):
        runs = measurements.setdefault(key_of(kind, settings), [])
        if len(runs) == repeat:
            progress(f"measuring {kind} {settings} ...")
            runs.append(measure_in_fresh_process(kind, **settings))
            figures = {name: runs[-1][name] for name in SUMMARY if name in runs[-1]}
            progress(f"  -> {figures}")
        return runs[-1]

    return measure


def median(results):
    """The median of each number across repeated results of one measurement (same structure)."""
    first = results[0]
    if isinstance(first, dict):
        return {key: median([result[key] for result in results]) for key in first}
    if isinstance(first, list) and first and isinstance(first[0], (int, float)):
        return [median([result[i] for result in results]) for i in range(len(first))]
    if isinstance(first, float):
        return statistics.median(results)
    if isinstance(first, int) and not isinstance(first, bool):
        return statistics.median_low(results)  # counts stay whole numbers
    return first


def machine():
    """What the figures were measured on: CPU model and cores, library versions."""
    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "tensorflow": version("tensorflow"),
        "keras": version("keras"),
    }
