"""Benchmarks: speed and memory of the DenseNet and of the input pipeline, as ratios.

``python -m densenet_tutorial bench`` runs the five comparisons of ``PARTS``; ``run_bench`` is
the same as a function, ``growth_rate_table`` the part notebook 05 shows. Three rules keep the
figures honest on a shared machine:

- every figure comes from a fresh process (``measure_in_fresh_process`` runs this module as
  ``python -m densenet_tutorial.bench --worker ...``), so no run inherits another's memory,
  caches or compiled graphs; every worker imports the same modules and trains on the same
  synthetic batch;
- step time is the median of timed ``train_on_batch`` calls after a warm-up (the first call
  traces the graph), peak memory is the worker's peak resident set size (Linux's VmHWM, as
  ``ru_maxrss``), over the whole process and over the timed steps alone;
- every comparison is a ratio of two figures measured in the same run, minutes apart, since
  absolute times move with the load of the machine (it is recorded with each figure).

FLOPs are counted, not guessed: ``count_multiply_adds`` adds up the multiply-adds of every
convolution and fully connected layer from the model's own layer shapes, the convention of the
DenseNet paper (its "3.4 GFLOPs" for DenseNet-169 at 224 px are multiply-adds).
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

PARTS = ("model", "memory", "precision", "pipeline", "growth")
GROWTH_RATES = (12, 24, 32)
DENSENET169 = (6, 12, 32, 32)

# What one T4 trains per second: NVIDIA's DeepLearningExamples (ResNet-50 v1.5, PyTorch README)
# give a T4 1,190 img/s of mixed-precision inference (batch 128), and training a network costs
# about 3x its inference (forward + two backward products; their V100 figures: 3,249 img/s
# inference, 1,200 img/s training). ResNet-50 is 4.1 G multiply-adds against DenseNet-169's
# 3.4 G, but DenseNets run fewer FLOPs per second on GPUs (concatenations and batch norms are
# memory-bound), so the ResNet-50 rate of about 400 img/s is an upper bound for DenseNet-169.
T4_IMAGES_PER_SECOND = 400

SUMMARY = ("step_time_s", "images_per_second", "peak_memory_mb", "load_average")  # progress lines

# (part, ratio): (direction, bound) from issue 7. Step-time targets are checked on wall time and on
# CPU time per step: on a shared machine other processes inflate the first, hardly the second.
TARGETS = {
    ("model", "step_time"): ("<=", 1.02),
    ("model", "cpu_time_per_step"): ("<=", 1.02),
    ("model", "peak_memory"): ("<=", 1.0),
    ("memory", "peak_memory"): ("<=", 0.6),
    ("memory", "step_time"): ("<=", 1.3),
    ("memory", "cpu_time_per_step"): ("<=", 1.3),
    ("precision", "images_per_second"): (">=", 1.4),
    ("precision", "cpu_time_per_step"): ("<=", 1 / 1.4),
    ("pipeline", "first_epoch"): (">=", 1.0),
    ("pipeline", "cached_epoch"): (">=", 3.0),
    ("pipeline", "training_epoch_vs_t4"): (">=", 1.0),
}


# --- Measurements, each run inside a worker process --------------------------------------------


def peak_rss_mb():
    """The process's peak resident set size, in MiB: Linux's VmHWM, else ``ru_maxrss``."""
    status = Path("/proc/self/status")
    if status.exists():
        line = next(line for line in status.read_text().splitlines() if line.startswith("VmHWM"))
        return int(line.split()[1]) / 2**10  # kB
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # macOS: bytes
    return peak / 2**20


def reset_peak_rss():
    """Restart the peak from the current resident size (Linux); False where that is impossible."""
    clear_refs = Path("/proc/self/clear_refs")
    if not clear_refs.exists():
        return False
    clear_refs.write_text("5")  # 5: reset the resident set "high water mark" (man 5 proc)
    return True


def count_multiply_adds(model):
    """Multiply-adds of one image through every Conv2D and Dense layer (nested ones included).

    A convolution computes ``kh * kw * in_channels / groups`` products for each of its
    ``out_h * out_w * filters`` outputs; a Dense layer ``in_features * units``. Batch norm,
    ReLU, pooling and additions are left out, as in the paper's FLOP counts.
    """
    import keras

    total = 0
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.Conv2D):
            kh, kw, channels_per_group, filters = layer.kernel.shape
            out_h, out_w = layer.output.shape[1:3]
            total += out_h * out_w * filters * kh * kw * channels_per_group
        elif isinstance(layer, keras.layers.Dense):
            total += layer.kernel.shape[0] * layer.kernel.shape[1]
    return int(total)


def keras_reference(blocks, input_shape):
    """``keras.applications``' DenseNet with our input scaling and our one-logit head.

    ``DenseNet169(weights=None, include_top=False, pooling="avg")`` for the paper's blocks;
    other block counts use the generic builder behind it (growth rate 32 is fixed there).
    """
    import keras

    from densenet_tutorial.model import IMAGENET_MEAN, IMAGENET_STD

    presets = {
        (6, 12, 24, 16): keras.applications.DenseNet121,
        (6, 12, 32, 32): keras.applications.DenseNet169,
        (6, 12, 48, 32): keras.applications.DenseNet201,
    }
    inputs = keras.Input(shape=input_shape, name="image")
    x = keras.layers.Normalization(
        mean=[255 * m for m in IMAGENET_MEAN],
        variance=[(255 * s) ** 2 for s in IMAGENET_STD],
        name="normalize",
    )(inputs)
    options = dict(weights=None, include_top=False, input_tensor=x, pooling="avg")
    if tuple(blocks) in presets:
        base = presets[tuple(blocks)](**options)
    else:
        from keras.src.applications.densenet import DenseNet

        base = DenseNet(list(blocks), **options)
    outputs = keras.layers.Dense(1, dtype="float32", name="predictions")(base.output)
    return keras.Model(inputs, outputs, name="keras_applications_densenet")


def synthetic_batch(batch_size, image_size, seed=0):
    """One batch of random RGB images in [0, 255] and 0/1 labels, the same for every worker."""
    import numpy as np

    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (batch_size, image_size, image_size, 3)).astype("float32")
    labels = rng.integers(0, 2, (batch_size, 1)).astype("float32")
    return images, labels


def measure_training(
    blocks=DENSENET169,
    growth_rate=32,
    image_size=128,
    batch_size=32,
    steps=5,
    warmup=2,
    memory_efficient=False,
    precision="float32",
    reference=False,
    seed=0,
):
    """Build, compile and train one DenseNet on one fixed batch; time it and weigh it.

    ``reference=True`` measures ``keras_reference`` instead of ``build_densenet``;
    ``precision`` is a Keras dtype policy or ``"auto"`` (``train.pick_precision``).
    Returns the median step time of the ``steps`` calls after ``warmup`` untimed ones, the
    peak resident memory, the memory before the first step, parameters and multiply-adds.
    """
    import keras
    import tensorflow as tf

    from densenet_tutorial.model import build_densenet
    from densenet_tutorial.training import pick_precision

    keras.utils.set_random_seed(seed)
    policy = pick_precision(tf.distribute.get_strategy(), precision)
    keras.mixed_precision.set_global_policy(policy)
    input_shape = (image_size, image_size, 3)
    if reference:
        model = keras_reference(blocks, input_shape)
    else:
        model = build_densenet(
            blocks, growth_rate, input_shape=input_shape, memory_efficient=memory_efficient
        )
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
    )
    images, labels = synthetic_batch(batch_size, image_size, seed)
    memory_before = peak_rss_mb()
    times, cpu_times = [], []
    for step in range(warmup + steps):
        if step == warmup:
            peak_so_far = peak_rss_mb()
            steps_only = reset_peak_rss()
        start, cpu_start = time.perf_counter(), time.process_time()
        model.train_on_batch(images, labels)  # returns numpy values: the step has finished
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    step_time = statistics.median(times[warmup:])
    steps_peak = peak_rss_mb()  # since the reset: the timed steps' own peak
    return {
        "model": model.name,
        "policy": policy,
        "params": model.count_params(),
        "multiply_adds": count_multiply_adds(model),
        "step_time_s": step_time,
        "cpu_time_per_step_s": statistics.median(cpu_times[warmup:]),
        "first_step_s": times[0],
        "images_per_second": batch_size / step_time,
        "peak_memory_mb": max(peak_so_far, steps_peak),
        "timed_steps_peak_memory_mb": steps_peak if steps_only else None,
        "memory_before_training_mb": memory_before,
    }


def measure_pipeline(per_class=500, image_size=224, batch_size=32, epochs=2):
    """``data.benchmark_pipeline`` (ours against ``image_dataset_from_directory``) + peak memory."""
    from densenet_tutorial.data import benchmark_pipeline

    result = benchmark_pipeline(per_class, image_size, batch_size, epochs)
    return {**result, "peak_memory_mb": peak_rss_mb()}


WORKERS = {"training": measure_training, "pipeline": measure_pipeline}


# --- The five comparisons ----------------------------------------------------------------------


def compare_with_keras(measure, settings):
    """Part 1: our DenseNet against keras.applications' with the same head, batch and size."""
    runs = {
        "ours": measure("training", **settings),
        "keras.applications": measure("training", **settings, reference=True),
    }
    return comparison(runs, "ours", "keras.applications", "model")


def compare_memory_efficient(measure, settings):
    """Part 2: ``memory_efficient=True`` against ``False`` (Pleiss et al. 2017)."""
    runs = {
        "memory_efficient=True": measure("training", **settings, memory_efficient=True),
        "memory_efficient=False": measure("training", **settings),
    }
    return comparison(runs, "memory_efficient=True", "memory_efficient=False", "memory")


def compare_precisions(measure, settings):
    """Part 3: float32 against the policy ``train.pick_precision`` chooses for this machine.

    When that choice is float32 (no bfloat16 instructions found), mixed bfloat16 is measured
    too, so the table shows what the automatic choice avoided.
    """
    runs = {"float32": measure("training", **settings)}
    auto = measure("training", **settings, precision="auto")
    runs[f"auto ({auto['policy']})"] = auto
    part = comparison(runs, f"auto ({auto['policy']})", "float32", "precision")
    if auto["policy"] == "float32":
        runs["mixed_bfloat16"] = measure("training", **settings, precision="mixed_bfloat16")
        part["ratios"]["mixed_bfloat16_images_per_second"] = (
            runs["mixed_bfloat16"]["images_per_second"] / runs["float32"]["images_per_second"]
        )
    return part


def compare_pipelines(measure, images, image_size, batch_size):
    """Part 4: ``make_dataset`` against ``keras.utils.image_dataset_from_directory``.

    Both decode, resize, augment (``data.augmentation``) and batch the same generated
    500x375 JPEGs. Epoch 1 decodes the files; in epoch 2 ``make_dataset`` reads its cache while
    the Keras loader, which has none, decodes again. Epoch 2 is what most of training sees, so
    it is also compared with the rate a T4 trains at (``T4_IMAGES_PER_SECOND``).
    """
    result = measure(
        "pipeline", per_class=images // 2, image_size=image_size, batch_size=batch_size
    )
    ours = result["augment"]["make_dataset"]
    keras_loader = result["augment"]["image_dataset_from_directory"]
    ratios = {
        "first_epoch": ours[0] / keras_loader[0],
        "cached_epoch": ours[1] / keras_loader[1],
        "training_epoch_vs_t4": ours[1] / T4_IMAGES_PER_SECOND,
    }
    return {"runs": result, "ratios": ratios, "targets": targets_of("pipeline", ratios)}


def comparison(runs, subject, baseline, part):
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
    return {"runs": runs, "ratios": ratios, "targets": targets_of(part, ratios)}


def targets_of(part, ratios):
    """Each ratio of ``part`` that issue 7 sets a target for: the target and whether it is met."""
    checks = {}
    for (target_part, name), (direction, bound) in TARGETS.items():
        if target_part == part and name in ratios:
            value = ratios[name]
            met = value <= bound if direction == "<=" else value >= bound
            checks[name] = {"target": f"{direction} {bound:.2f}", "met": met}
    return checks


def growth_rate_table(
    growth_rates=GROWTH_RATES,
    blocks=DENSENET169,
    image_size=128,
    batch_size=32,
    steps=5,
    warmup=2,
    measure=None,
):
    """Part 5 (and notebook 05): parameters, multiply-adds, step time and memory per k.

    One row per growth rate, each trained in a fresh process; returns a list of dicts.
    """
    measure = measure or measure_in_fresh_process
    settings = dict(blocks=list(blocks), image_size=image_size, batch_size=batch_size)
    rows = []
    for growth_rate in growth_rates:
        result = measure(
            "training", **settings, steps=steps, warmup=warmup, growth_rate=growth_rate
        )
        rows.append({"growth_rate": growth_rate, **result})
    return rows


def run_bench(
    parts=PARTS,
    image_size=128,
    batch_size=32,
    steps=5,
    warmup=2,
    blocks=DENSENET169,
    growth_rates=GROWTH_RATES,
    pipeline_images=1000,
    pipeline_size=224,
    repeats=1,
    progress=print,
):
    """Run the chosen ``PARTS`` and return their figures and ratios as one JSON-ready dict.

    A figure needed by two parts (our float32 DenseNet-169 is the baseline of three) is
    measured once and shared. With ``repeats`` > 1 the whole sequence runs that many times,
    so the load of the machine hits every configuration alike, and each figure is the
    median over the repeats.
    """
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise ValueError(f"unknown benchmark part(s) {sorted(unknown)}: choose from {PARTS}.")
    if steps < 1 or warmup < 0 or repeats < 1:
        raise ValueError(
            f"steps={steps}, warmup={warmup}, repeats={repeats}: "
            f"time at least one step (warmup >= 0), at least once."
        )
    settings = dict(
        blocks=list(blocks), growth_rate=32, image_size=image_size, batch_size=batch_size,
        steps=steps, warmup=warmup,
    )  # fmt: skip

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
        if "growth" in parts:
            rows = growth_rate_table(
                growth_rates, blocks, image_size, batch_size, steps, warmup, measure
            )
            result["growth"] = {"rows": rows}
        return result

    measurements = {}
    for repeat in range(repeats):
        run_parts(recording_measure(measurements, repeat, progress))
    result = run_parts(lambda kind, **settings: median(measurements[key_of(kind, settings)]))
    settings.update(growth_rates=list(growth_rates), repeats=repeats)
    return {"settings": settings, "machine": machine(), **result}


def key_of(kind, settings):
    return json.dumps([kind, settings], sort_keys=True)


def recording_measure(measurements, repeat, progress):
    """``measure_in_fresh_process`` that appends to ``measurements``, once per figure per repeat.

    A figure needed by two parts (our float32 DenseNet is the baseline of three) is measured
    once per repeat and shared.
    """

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
    from importlib.metadata import version

    from densenet_tutorial.training import cpu_name

    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "tensorflow": version("tensorflow"),
        "keras": version("keras"),
    }


# --- The table ---------------------------------------------------------------------------------


def format_table(result):
    """The figures of ``run_bench`` as Markdown tables: ratios first, then every measurement."""
    lines = ["| part | ratio | value | target | met |", "|---|---|---:|---|---|"]
    for part in PARTS:
        for name, value in result.get(part, {}).get("ratios", {}).items():
            check = result[part]["targets"].get(name)
            target, met = (
                (check["target"], "yes" if check["met"] else "**no**") if check else ("", "")
            )
            lines.append(f"| {part} | {name} | {value:.2f}x | {target} | {met} |")
    lines += [
        "",
        "| part | run | step (s) | CPU s/step | img/s | peak RSS (MB) | timed steps' peak (MB) "
        "| before 1st step (MB) | params | G mult-adds/img | load avg |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    rows = [
        (part, label, run)
        for part in ("model", "memory", "precision")
        for label, run in result.get(part, {}).get("runs", {}).items()
    ]
    rows += [
        ("growth", f"k={row['growth_rate']}", row)
        for row in result.get("growth", {}).get("rows", [])
    ]
    for part, label, run in rows:
        lines.append(
            f"| {part} | {label} | {run['step_time_s']:.3f} | {run['cpu_time_per_step_s']:.2f} "
            f"| {run['images_per_second']:.1f} "
            f"| {run['peak_memory_mb']:,.0f} "
            f"| {format_megabytes(run['timed_steps_peak_memory_mb'])} "
            f"| {run['memory_before_training_mb']:,.0f} "
            f"| {run['params']:,} | {run['multiply_adds'] / 1e9:.3f} "
            f"| {run['load_average'][0]:.1f}-{run['load_average'][1]:.1f} |"
        )
    if "pipeline" in result:
        lines += ["", *format_pipeline(result["pipeline"]["runs"])]
    return "\n".join(lines)


def format_megabytes(value):
    return "-" if value is None else f"{value:,.0f}"


def format_pipeline(runs):
    """Images per second of each input pipeline, epoch by epoch."""
    lines = [
        f"| pipeline ({runs['images']:,} JPEGs, 500x375) | epoch 1 img/s | epoch 2 img/s |",
        "|---|---:|---:|",
    ]
    for mode, pipelines in runs.items():
        if isinstance(pipelines, dict):
            for name, rates in pipelines.items():
                epochs = " | ".join(f"{rate:,.0f}" for rate in rates)
                lines.append(
                    f"| {name} ({'augmented' if mode == 'augment' else mode}) | {epochs} |"
                )
    return lines


# --- Fresh processes ---------------------------------------------------------------------------


def measure_in_fresh_process(kind, **settings):
    """Run ``WORKERS[kind](**settings)`` in a new Python process and return its result.

    The load average of the machine before and after is kept with the result: on a shared
    machine it says how much to trust an absolute time.
    """
    command = [
        sys.executable,
        "-m",
        "densenet_tutorial.bench",
        "--worker",
        kind,
        json.dumps(settings),
    ]
    load_before = os.getloadavg()[0]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode == 2:  # the worker's message for an error the user can fix
        raise ValueError(done.stdout.strip().splitlines()[-1])
    if done.returncode != 0:
        raise RuntimeError(
            f"the {kind} benchmark {settings} failed (exit status {done.returncode}); "
            f"its last output:\n{done.stderr[-2000:]}\nIf it ran out of memory, "
            f"try a smaller --batch-size or --image-size."
        )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["load_average"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    return result


def worker_main(kind, settings_json):
    """The worker's entry point: measure, then print the result as one JSON line.

    A bad setting (an image too small for the network, say) is one line and exit status 2.
    """
    try:
        result = WORKERS[kind](**json.loads(settings_json))
    except ValueError as error:
        print(error, flush=True)
        sys.exit(2)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="one benchmark measurement (internal)")
    parser.add_argument("--worker", nargs=2, metavar=("KIND", "SETTINGS_JSON"), required=True)
    worker_main(*parser.parse_args().worker)
