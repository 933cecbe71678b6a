"""What a DenseNet costs: multiply-adds counted from its layers, time and memory measured.

Notebook 05 compares growth rates with ``growth_rate_table``; the benchmarks beside the
package (``python -m benchmarks``) use the same measurements. Three rules keep the figures
honest:

- every measurement runs in a fresh Python process (``measure_in_fresh_process``), so none
  inherits another's memory, caches or traced graphs; the processes share a GPU, each
  taking only the memory it uses (``hardware.allow_gpu_memory_growth``);
- what is timed is the training model exactly as ``fit`` runs it (``training.training_model``:
  the augmentation inside the step, the recipe's optimizer and loss, the precision that
  training picks, and Keras's own XLA decision), and every result says which;
- step time is the median of timed ``train_on_batch`` calls after untimed warm-up steps
  (the first call traces and compiles the step); peak memory is the GPU's where there is
  one (its tensors live there), else the process's peak resident set size.

FLOPs are counted, not guessed: ``count_multiply_adds`` adds up the multiply-adds of every
convolution and fully connected layer from the model's own shapes, the convention of the
DenseNet paper (its "3.4 GFLOPs" for DenseNet-169 at 224 px are multiply-adds).
"""

import importlib
import json
import os
import statistics
import subprocess
import sys
import time
import warnings

from densenet_tutorial import hardware
from densenet_tutorial.errors import RunError, SettingError
from densenet_tutorial.model import DENSENET169

GROWTH_RATES = (12, 24, 32)


def all_layers(layer):
    """Every layer inside ``layer``: those of nested models and recomputed blocks too."""
    for inner in getattr(layer, "layers", []):
        yield inner
        yield from all_layers(inner)


def count_multiply_adds(model):
    """Multiply-adds of one image through every Conv2D and Dense layer (nested ones included).

    A convolution computes ``kh * kw * in_channels / groups`` products for each of its
    ``out_h * out_w * filters`` outputs; a Dense layer ``in_features * units``. Batch norm,
    ReLU, pooling and concatenation are left out, as in the paper's FLOP counts.
    """
    import keras

    total = 0
    for layer in all_layers(model):
        if isinstance(layer, keras.layers.Conv2D):
            kh, kw, channels_per_group, filters = layer.kernel.shape
            out_h, out_w = layer.output.shape[1:3]
            total += out_h * out_w * filters * kh * kw * channels_per_group
        elif isinstance(layer, keras.layers.Dense):
            total += layer.kernel.shape[0] * layer.kernel.shape[1]
    return int(total)


def synthetic_batch(batch_size, image_size, seed=0):
    """One batch of random RGB uint8 images and 0/1 labels, the same for every process."""
    import numpy as np

    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (batch_size, image_size, image_size, 3), dtype=np.uint8)
    labels = rng.integers(0, 2, (batch_size, 1)).astype("float32")
    return images, labels


def measure_training(
    blocks=DENSENET169, growth_rate=32, image_size=128, batch_size=32, steps=5, warmup=2,
    memory_efficient=False, precision="auto", augment=True, reference=False, seed=0,
):  # fmt: skip
    """Build one DenseNet's training model as ``train`` does; time it and weigh it.

    The network is that of a ``RunConfig`` of these settings (``training.build_network``),
    in ``training.training_model``: ``augment`` puts ``augmentation()`` in the step (or, given
    as ``"module:name"``, another augmentation made from the seed: the benchmarks' baseline),
    ``precision`` is a Keras dtype policy or ``"auto"`` (``training.pick_precision``), and
    Keras decides on XLA as it does for ``fit``.
    ``reference=True`` measures keras.applications' DenseNet (``keras_reference``) instead of
    ours. Returns ``time_training``'s figures.
    """
    import keras

    from densenet_tutorial.config import RunConfig
    from densenet_tutorial.training import (
        build_network,
        global_policy,
        learning_rate_schedule,
        pick_precision,
        training_model,
    )

    if steps < 1 or warmup < 0:
        raise SettingError(f"steps={steps}, warmup={warmup}: time at least one step.")
    config = RunConfig(blocks=blocks, growth_rate=growth_rate, image_size=image_size,
                       batch_size=batch_size, memory_efficient=memory_efficient,
                       precision=precision, seed=seed)  # fmt: skip
    keras.utils.set_random_seed(seed)
    with global_policy(pick_precision(config.precision)):
        if reference:
            network = keras_reference(blocks, (image_size, image_size, 3))
        else:
            network = build_network(config)
        schedule = learning_rate_schedule(batch_size, warmup + steps, config.epochs)  # a run's
        model = training_model(network, augmentation_for(augment, seed), schedule)
        return time_training(model, batch_size, steps, warmup, seed)


def augmentation_for(augment, seed):
    """``augmentation(seed)`` for True, none for False, else the ``"module:name"`` one."""
    from densenet_tutorial.data import augmentation

    if isinstance(augment, str):
        module, name = augment.split(":")
        return getattr(importlib.import_module(module), name)(seed)
    return augmentation(seed) if augment else None


def time_training(model, batch_size, steps, warmup, seed=0):
    """Time ``steps`` training steps of a compiled training model after ``warmup`` untimed ones.

    All on one fixed batch (``synthetic_batch``: no input pipeline). Returns the median step
    time, the CPU time per step, the peak memory (over the whole process and over the timed
    steps alone, where the machine allows resetting it), what the step ran with (precision,
    XLA, augmentation: ``timeplan.step_settings``), parameters and multiply-adds.
    """
    from densenet_tutorial.timeplan import step_settings

    network = model.network
    images, labels = synthetic_batch(batch_size, network.input.shape[1], seed)
    memory_before = hardware.peak_memory_mb()
    times, cpu_times = [], []
    for step in range(warmup + steps):
        if step == warmup:
            peak_so_far = hardware.peak_memory_mb()
            steps_only = hardware.reset_peak_memory()
        start, cpu_start = time.perf_counter(), time.process_time()
        model.train_on_batch(images, labels)  # returns numpy values: the step has finished
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    step_time = statistics.median(times[warmup:])
    steps_peak = hardware.peak_memory_mb()  # since the reset: the timed steps' own peak
    return {
        "model": network.name,
        **step_settings(model),
        "params": network.count_params(),
        "multiply_adds": count_multiply_adds(network),
        "step_time_s": step_time,
        "cpu_time_per_step_s": statistics.median(cpu_times[warmup:]),
        "first_step_s": times[0],
        "images_per_second": batch_size / step_time,
        "peak_memory_mb": max(peak_so_far, steps_peak),
        "timed_steps_peak_memory_mb": steps_peak if steps_only else None,
        "memory_before_training_mb": memory_before,
        "peak_memory_of": hardware.memory_device() or "process (RSS)",
    }


def keras_reference(blocks, input_shape):
    """``keras.applications``' DenseNet-121/169/201 with our input scaling and one-logit head."""
    import keras

    from densenet_tutorial.model import DENSENET121, DENSENET201, normalization

    presets = {
        DENSENET121: keras.applications.DenseNet121,
        DENSENET169: keras.applications.DenseNet169,
        DENSENET201: keras.applications.DenseNet201,
    }
    if tuple(blocks) not in presets:
        raise SettingError(
            f"blocks={tuple(blocks)}: keras.applications has DenseNets with blocks "
            f"{', '.join(map(str, presets))} only."
        )
    inputs = keras.Input(shape=input_shape, name="image")
    base = presets[tuple(blocks)](
        weights=None, include_top=False, input_tensor=normalization()(inputs), pooling="avg"
    )
    outputs = keras.layers.Dense(1, dtype="float32", name="predictions")(base.output)
    return keras.Model(inputs, outputs, name="keras_applications_densenet")


def growth_rate_table(
    growth_rates=GROWTH_RATES, blocks=DENSENET169, image_size=128, batch_size=32, steps=5,
    warmup=2, precision="auto", measure=None,
):  # fmt: skip
    """Parameters, multiply-adds, step time and memory for each growth rate k (notebook 05).

    One row per growth rate, its training model built in a fresh process as ``train`` builds
    it (``measure_training``: augmentation, ``precision``, Keras's XLA decision); returns a
    list of dicts. Prints one line as each growth rate starts.
    """
    if steps < 1:
        raise SettingError(f"steps={steps}: time at least one training step per growth rate.")
    measure = measure or measure_in_fresh_process
    settings = dict(blocks=list(blocks), image_size=image_size, batch_size=batch_size,
                    steps=steps, warmup=warmup, precision=precision)  # fmt: skip
    rows = []
    for k in growth_rates:  # a minute or more each on a GPU: say which one is being measured
        print(f"k = {k}: building and timing its training step in a fresh process ...", flush=True)
        result = measure("densenet_tutorial.costs:measure_training", growth_rate=k, **settings)
        rows.append({"growth_rate": k, **result})
    return rows


def measure_in_fresh_process(function, **settings):
    """Run ``function`` (``"module:name"``) with ``settings`` in a new Python process.

    The new process shares the GPU with this one (``hardware.allow_gpu_memory_growth``). The
    machine's load average before and after is kept with the result: on a shared machine it
    says how much to trust an absolute time. Why not ``concurrent.futures``: the worker's
    output, TensorFlow's start-up lines from its C++ code included, is captured here and shown
    only if it fails, while a pool's worker writes to this process's own standard output and
    error (which a notebook's kernel may show in the cell); and an out-of-memory kill would
    leave only ``BrokenProcessPool``, without the worker's last lines.
    """
    command = [sys.executable, "-m", "densenet_tutorial.costs", function, json.dumps(settings)]
    if not hardware.allow_gpu_memory_growth():
        warnings.warn(
            "This process already holds the GPU's memory, so a measurement may run out of it: "
            "restart the runtime and run the notebook from the top.",
            stacklevel=2,
        )
    load_before = os.getloadavg()[0]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode == 2:  # the worker's message for a setting the user can fix
        raise SettingError(done.stdout.strip().splitlines()[-1])
    if done.returncode != 0:
        raise RunError(
            f"measuring {function} {settings} failed (exit status {done.returncode}); its "
            f"last output:\n{done.stderr[-2000:]}\nIf it ran out of memory, try a smaller "
            f"batch or image size."
        )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["load_average"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    return result


def worker_main(function, settings_json):
    """A fresh process's entry point: measure, print the result as one JSON line."""
    module, name = function.split(":")
    try:
        result = getattr(importlib.import_module(module), name)(**json.loads(settings_json))
    except SettingError as error:
        print(error, flush=True)
        sys.exit(2)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    worker_main(*sys.argv[1:3])
