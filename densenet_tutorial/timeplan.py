"""The time plan: how long a run will take on this machine, measured before it starts.

``estimate(data_dir, ...)`` (``python -m densenet_tutorial train --estimate``) builds the run
as ``training.train`` would (the same settings, model, precision and input pipeline), trains
nothing and writes nothing, and measures, in the order the run meets them:

1. the wait before the first step: building the training stream and decoding its first batch
   (``data.pipeline.training_epochs``: the first epoch decodes as it goes);
2. the input pipeline's rate in the first epoch, the files decoded, a few batches;
3. the training step's first call, the compile included (with XLA, which Keras uses on a
   GPU, the step is compiled for its input shape; ``training_steps`` keeps that one shape),
   then its steady rate; the same for the validation step;
4. the peak memory: the GPU's, else the process's.

The model it measures is compiled for the plan alone: the run compiles its own again, and a
resumed run (a new process) too; the plan says what that costs. What it cannot measure it
says too: Google Drive's writes (each epoch's training state and ``best.keras``), another
device's speed and compile time (a CPU's figures say nothing of a GPU's), and epochs after the
first that slow down (a throttled GPU, a shared machine).
"""

import itertools
import time

import keras

from densenet_tutorial import hardware, training
from densenet_tutorial.config import RunConfig
from densenet_tutorial.errors import RunError


def seconds(call):
    """How long ``call()`` took, in seconds (it must return when its work is done)."""
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def step_rate(step, batch, steps):
    """Images per second of ``steps`` calls of ``step`` on ``batch``, after its first call."""
    first = seconds(lambda: step(*batch))
    later = sum(seconds(lambda: step(*batch)) for _ in range(steps))
    return first, len(batch[1]) * steps / later


def time_plan(model, stream, val_data, steps_per_epoch, epochs, steps=5):
    """Measure the run's first minutes and its steady pace; return the plan as a dict.

    ``stream()`` builds the run's training stream (``training.training_data``), read here
    from its start as the run would read it; ``model`` is the training model as ``fit`` runs
    it.
    Minutes: the first epoch waits for its first batch, pays the compiles (the step's first
    call minus a steady call) and runs at the slower of decoding and training; later epochs
    read the decoded images from memory and run at the model's pace.
    """
    hardware.reset_peak_memory()
    start = time.perf_counter()
    batches = iter(stream())
    batch = next(batches)
    first_batch = time.perf_counter() - start
    read = 4 * steps  # more batches than the pipeline decodes ahead while the first waits
    decoding = len(batch[1]) * read / seconds(lambda: list(itertools.islice(batches, read)))
    train_first, training_rate = step_rate(model.train_on_batch, batch, steps)
    val_batch = next(iter(val_data))
    val_first, validation_rate = step_rate(model.test_on_batch, val_batch, steps)
    batch_size = len(batch[1])
    train_images = steps_per_epoch * batch_size
    val_images = int(val_data.cardinality()) * len(val_batch[1])
    compiles = train_first - batch_size / training_rate + val_first - batch_size / validation_rate
    later = train_images / training_rate + val_images / validation_rate
    first = (first_batch + compiles + train_images / min(decoding, training_rate)
             + val_images / validation_rate)  # fmt: skip
    return {
        "seconds_to_first_batch": first_batch,
        "pipeline_images_per_second": decoding,
        "first_training_step_seconds": train_first,
        "training_images_per_second": training_rate,
        "first_validation_step_seconds": val_first,
        "validation_images_per_second": validation_rate,
        "compile_seconds": max(0.0, compiles),
        "first_epoch_limited_by": "input pipeline" if decoding < training_rate else "model",
        "minutes_first_epoch": first / 60,
        "minutes_per_later_epoch": later / 60,
        "epochs": epochs,
        "minutes_total": (first + (epochs - 1) * later) / 60,
        **step_settings(model),
        "device": hardware.memory_device() or "CPU",
        "peak_memory_mb": hardware.peak_memory_mb(),
        "peak_memory_of": hardware.memory_device() or "process (RSS)",
    }


def step_settings(model):
    """What a training model's step runs with: precision, XLA, the augmentation's name."""
    augmentation = model.augmentation
    return {
        "policy": model.dtype_policy.name,
        "xla": bool(model.jit_compile),
        "augmentation": None if augmentation is None else augmentation.name,
    }


def format_time_plan(plan):
    """The time plan as a few lines for a learner, what it could not measure included."""
    step = (f"{plan['policy']}, XLA {'on' if plan['xla'] else 'off'}, "
            f"augmentation {'in the step' if plan['augmentation'] else 'off'}")  # fmt: skip
    cpu = plan["device"] == "CPU"
    return "\n".join([
        f"measured on {plan['device']}:",
        f"first batch after:                  {plan['seconds_to_first_batch']:,.1f} s "
        f"(building the stream, decoding one batch)",
        f"input pipeline (epoch 1, decoding): {plan['pipeline_images_per_second']:,.0f} img/s",
        f"training step:                      {plan['training_images_per_second']:,.1f} img/s"
        f" ({step})",
        f"validation step:                    {plan['validation_images_per_second']:,.1f} img/s",
        f"first calls (compiles): training {plan['first_training_step_seconds']:,.1f} s, "
        f"validation {plan['first_validation_step_seconds']:,.1f} s; the run pays them again "
        f"(about {plan['compile_seconds']:,.0f} s), and so does every resumed run",
        f"epoch 1 is limited by the {plan['first_epoch_limited_by']}; later epochs by the model",
        f"minutes: epoch 1 {plan['minutes_first_epoch']:,.1f}, then "
        f"{plan['minutes_per_later_epoch']:,.1f} per epoch; all {plan['epochs']} epochs "
        f"{plan['minutes_total']:,.0f} ({plan['minutes_total'] / 60:,.1f} h)",
        f"peak memory ({plan['peak_memory_of']}): {plan['peak_memory_mb']:,.0f} MB",
        "not measured: writing each epoch's training state and best.keras (slow on Google "
        "Drive), epochs that slow down later (a throttled GPU, a shared machine)"
        + ("; a GPU's speed and its compile with XLA (this is a CPU)" if cpu else ""),
    ])  # fmt: skip


def estimate(data_dir, config=None, steps=5):
    """The time plan (``time_plan``) of the run ``training.train`` would start with the
    ``RunConfig`` ``config`` (None: the full run), without a run folder: nothing is trained and
    nothing written."""
    import tensorflow as tf

    config = config or RunConfig()
    split_dir = training.find_split(data_dir)
    keras.utils.set_random_seed(config.seed)
    strategy = training.pick_strategy()
    policy = training.pick_precision(config.precision)
    global_batch = training.global_batch_size(strategy, config.batch_size)
    registered = hardware.custom_gradients()
    try:
        with training.global_policy(policy), training.op_determinism(config.deterministic):
            model, val_data, steps_per_epoch = training.build_run(
                split_dir, config, strategy, global_batch
            )

            def stream():
                return training.training_data(split_dir, config, global_batch,
                                              steps_per_epoch, 0)  # fmt: skip

            return time_plan(model, stream, val_data, steps_per_epoch, config.epochs, steps)
    except tf.errors.ResourceExhaustedError as error:
        raise RunError(training.out_of_memory_message(config, global_batch)) from error
    finally:
        model = val_data = None  # the plan's model and decoded images
        hardware.release_memory(registered)
