"""Training: join the DenseNet (``model``) and the input pipeline (``data``) in a run folder.

``train(data_dir, out_dir, ...)`` is what the notebooks call and what
``python -m densenet_tutorial train`` wraps. One short function per decision:

- ``pick_strategy``: ``TPUStrategy`` on a TPU, ``MirroredStrategy`` on several GPUs, the default
  strategy otherwise; the global batch is the per-replica batch times the replicas;
- ``pick_precision``: float16 on GPUs with tensor cores, bfloat16 on TPUs and on CPUs with bfloat16
  instructions, float32 otherwise (the model computes its logit in float32 anyway);
- ``learning_rate_schedule``, ``make_optimizer``, ``compile_model``: the recipe (see the README);
- ``check_run_folder``, ``make_callbacks``: a run folder that resumes after a disconnect and is
  never overwritten by a different configuration.

The test split is touched once, after training, by ``densenet_tutorial.evaluate``.
"""

import contextlib
import itertools
import json
import os
import time
from glob import glob
from pathlib import Path

import keras

from densenet_tutorial import hardware
from densenet_tutorial.data import augmentation, make_dataset
from densenet_tutorial.defaults import (  # the sizes of a run, written once there
    BATCH_SIZE,
    FULL,
    PRECISIONS,
    QUICK,
    QUICK_STEPS_PER_EPOCH,
    SEED,
)
from densenet_tutorial.errors import MissingInputError, RunError, SettingError
from densenet_tutorial.evaluate import evaluate_run, read_history
from densenet_tutorial.model import build_densenet
from densenet_tutorial.pretrained import load_imagenet_weights

# The recipe: "Bag of Tricks" (He et al., CVPR 2019) applied to the paper's SGD (Sec. 4.2).
LEARNING_RATE = 0.1  # per 256 images: the paper's ImageNet rate, scaled linearly with the batch
REFERENCE_BATCH = 256  # (Goyal et al. 2017, "linear scaling rule")
MOMENTUM = 0.9  # Nesterov, as the paper
WEIGHT_DECAY = 1e-3  # decoupled; = the paper's L2 of 1e-4 / (1 - momentum), see make_optimizer
WARMUP_FRACTION = 0.05  # linear warm-up over the first 5 % of steps (2 of 40 epochs)
LABEL_SMOOTHING = 0.1
NO_WEIGHT_DECAY = ("gamma", "beta", "bias")  # BatchNormalization scale/offset and the Dense bias


def find_tpu():
    """A TPU cluster resolver on a Colab/Kaggle/Cloud TPU runtime, else ``None``.

    Only asks TensorFlow when the runtime shows signs of a TPU, so CPU and GPU machines never
    wait for the Cloud TPU metadata service.
    """
    import tensorflow as tf

    if "COLAB_TPU_ADDR" in os.environ:  # older Colab TPU runtimes: a TPU node over gRPC
        tpu = "grpc://" + os.environ["COLAB_TPU_ADDR"]
    elif "TPU_NAME" in os.environ or glob("/dev/accel*"):  # TPU VMs: the chips are local
        tpu = os.environ.get("TPU_NAME", "local")
    else:
        return None
    return tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)


def pick_strategy():
    """``TPUStrategy`` on a TPU, ``MirroredStrategy`` on 2+ GPUs, else the default strategy."""
    import tensorflow as tf

    resolver = find_tpu()
    if resolver is not None:
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    if len(tf.config.list_physical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def global_batch_size(strategy, batch_size):
    """Each replica gets ``batch_size`` images, so one step sees this many."""
    return batch_size * strategy.num_replicas_in_sync


def pick_precision(strategy, precision="auto"):
    """The Keras dtype policy: ``precision`` itself unless it is ``"auto"``.

    Auto: mixed bfloat16 on TPUs and on CPUs with bfloat16 instructions, mixed float16 on GPUs
    with tensor cores (compute capability 7.0 or newer), float32 otherwise. Mixed precision
    keeps the variables in float32 and computes in 16 bits (Micikevicius et al. 2018).
    """
    import tensorflow as tf

    if precision not in PRECISIONS:
        raise SettingError(f"precision={precision!r} is not allowed: use one of {PRECISIONS}.")
    if precision != "auto":
        return precision
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return "mixed_bfloat16"
    gpus = hardware.gpus()
    if gpus:
        return "mixed_float16" if all(map(hardware.gpu_supports_float16, gpus)) else "float32"
    return "mixed_bfloat16" if hardware.cpu_supports_bfloat16() else "float32"


def learning_rate_schedule(global_batch, steps_per_epoch, epochs, learning_rate=LEARNING_RATE):
    """Linear warm-up from 0 (Goyal et al. 2017), then cosine decay to 0 (Loshchilov & Hutter).

    The peak is ``learning_rate * global_batch / REFERENCE_BATCH``: 0.0125 for a batch of 32
    with the paper's 0.1 per 256 images.
    """
    total_steps = steps_per_epoch * epochs
    warmup_steps = max(1, round(WARMUP_FRACTION * total_steps))
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0,
        decay_steps=total_steps - warmup_steps,
        warmup_target=learning_rate * global_batch / REFERENCE_BATCH,
        warmup_steps=warmup_steps,
    )


def make_optimizer(learning_rate):
    """SGD with Nesterov momentum 0.9 and weight decay on the weights of convolutions only.

    Keras applies ``weight_decay`` decoupled (``w -= lr * wd * w`` outside the momentum, Loshchilov
    & Hutter 2019). The paper's L2 penalty of 1e-4 passes through the momentum, which scales its
    steady-state effect by 1 / (1 - momentum), so the same shrinkage is ``1e-4 / (1 - 0.9)``.
    BatchNormalization's scale and offset and the classifier's bias are not decayed ("no bias
    decay", He et al. 2019): shrinking them only changes the scale the next layer sees.
    """
    optimizer = keras.optimizers.SGD(
        learning_rate, momentum=MOMENTUM, nesterov=True, weight_decay=WEIGHT_DECAY
    )
    optimizer.exclude_from_weight_decay(var_names=list(NO_WEIGHT_DECAY))
    return optimizer


def compile_model(model, learning_rate):
    """Binary cross-entropy on the logit with label smoothing; accuracy and AUC on the logit.

    The model outputs a logit z (no sigmoid), so the class boundary is z = 0, not 0.5.
    """
    model.compile(
        optimizer=make_optimizer(learning_rate),
        loss=keras.losses.BinaryCrossentropy(from_logits=True, label_smoothing=LABEL_SMOOTHING),
        metrics=[
            keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0),
            keras.metrics.AUC(name="auc", from_logits=True),
        ],
    )
    return model


def resolve_settings(split_dir, quick, **settings):
    """Every setting of the run, with ``None`` replaced by the recipe or the quick-mode value."""
    defaults = QUICK if quick else FULL
    for name, value in defaults.items():
        if settings.get(name) is None:
            settings[name] = value
    settings["blocks"] = list(settings["blocks"])  # as JSON keeps it; build_densenet checks it
    for name in ("batch_size", "epochs"):
        value = settings[name]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise SettingError(f"{name}={value!r} is not allowed: a whole number >= 1.")
    recipe = {
        "optimizer": "SGD, Nesterov momentum",
        "momentum": MOMENTUM,
        "warmup_fraction": WARMUP_FRACTION,
        "schedule": "linear warm-up from 0, then cosine decay to 0",
        "weight_decay_decoupled": WEIGHT_DECAY,
        "no_weight_decay": list(NO_WEIGHT_DECAY),
        "label_smoothing": LABEL_SMOOTHING,
        "loss": "binary cross-entropy on the logit",
        "steps_per_epoch_cap": QUICK_STEPS_PER_EPOCH if quick else None,
    }
    return {"split_dir": str(Path(split_dir).resolve()), "quick": quick, **settings, **recipe}


def check_run_folder(out_dir, settings):
    """True to resume the run in ``out_dir``, False to start one; refuse a different config.

    A folder holding a ``config.json`` with the same settings is resumed (``BackupAndRestore``
    picks up after the last finished epoch); any other non-empty folder is left alone.
    """
    config = out_dir / "config.json"
    if config.exists():
        saved = json.loads(config.read_text())["settings"]
        wanted = json.loads(json.dumps(settings))  # tuples -> lists, as they were saved
        changed = [
            f"{name}: {saved.get(name)!r} -> {wanted.get(name)!r}"
            for name in sorted(set(saved) | set(wanted))
            if saved.get(name) != wanted.get(name)
        ]
        if changed:
            raise SettingError(
                f"{out_dir} holds a run with a different configuration ({'; '.join(changed)}). "
                f"Rerun with the same settings to resume it, or choose a new --out folder."
            )
        return True
    if out_dir.exists() and any(out_dir.iterdir()):
        raise SettingError(
            f"{out_dir} is not empty and holds no config.json, so it is not a training run: "
            f"choose a new --out folder."
        )
    return False


def environment(strategy, policy):
    """The machine and libraries (``hardware.environment``), the strategy and the precision."""
    record = hardware.environment()
    record["hardware"].update(strategy=type(strategy).__name__,
                              replicas=strategy.num_replicas_in_sync)  # fmt: skip
    return {**record, "precision": policy}


class AugmentedModel(keras.Model):
    """The network with the training augmentation in front of it, applied only in training.

    ``fit`` calls the model with ``training=True``: the batch is augmented inside the
    training step, on the device that trains (each replica its own share), in float32. Keras
    random layers called without ``training`` default to augmenting; here the default is
    ``training=False``, so ``evaluate``, ``predict`` and ``model(x)`` see the images as they
    are. Only ``network``, the bare DenseNet, is saved as the run's model.
    """

    def __init__(self, network, augmentation=None, **kwargs):
        super().__init__(**kwargs)
        self.network = network
        self.augmentation = augmentation
        self.build(network.input.shape)  # built from the start: BackupAndRestore needs it

    def build(self, input_shape):
        if self.augmentation is not None:
            self.augmentation.build(input_shape)

    def call(self, images, training=False):
        if training and self.augmentation is not None:
            images = self.augmentation(keras.ops.cast(images, "float32"), training=True)
        return self.network(images, training=training)


class SaveBestNetwork(keras.callbacks.Callback):
    """Save ``model.network`` (no augmentation) whenever ``monitor`` beats its best so far.

    A tie keeps the earlier epoch. ``best`` is the best value of the epochs already run, so
    a resumed run only replaces the saved model with a better one.
    """

    def __init__(self, path, monitor="val_accuracy", best=None):
        super().__init__()
        self.path, self.monitor, self.best = path, monitor, best

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is not None and (self.best is None or value > self.best):
            self.best = float(value)
            self.model.network.save(self.path)


class EpochSeconds(keras.callbacks.Callback):
    """Add ``epoch_seconds``, the wall time of the epoch (validation included), to its logs.

    It comes first among the callbacks, so ``history.csv`` records it with the metrics.
    """

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs["epoch_seconds"] = time.perf_counter() - self.start


def best_so_far(history_csv, monitor="val_accuracy"):
    """The best ``monitor`` value of the epochs already run (None for a new run)."""
    if not history_csv.exists():
        return None
    values = read_history(history_csv).get(monitor)
    return float(values.max()) if values is not None and values.size else None


def make_callbacks(out_dir):
    """Epoch time, history, TensorBoard, the best network by validation accuracy, a backup.

    The backup comes last, so an epoch counts as done only once the others have recorded it;
    it keeps the last two states, so that a runtime cut off while one is being written
    resumes from the other, and it is kept after training so that rerunning a finished run
    trains no further.
    """
    return [
        EpochSeconds(),
        keras.callbacks.CSVLogger(out_dir / "history.csv", append=True),
        keras.callbacks.TensorBoard(log_dir=out_dir / "logs"),
        SaveBestNetwork(out_dir / "best.keras", best=best_so_far(out_dir / "history.csv")),
        keras.callbacks.BackupAndRestore(
            out_dir / "backup", delete_checkpoint=False, double_checkpoint=True
        ),
    ]


def out_of_memory_message(settings, global_batch):
    return (
        f"Out of memory training with {global_batch} images of {settings['image_size']} px per "
        f"step (batch size {settings['batch_size']} per replica). Try a smaller batch "
        f"(--batch-size {max(1, settings['batch_size'] // 2)}), --memory-efficient (recompute "
        f"the dense layers' bottlenecks instead of storing them), or smaller images "
        f"(--image-size {settings['image_size'] // 2}); in Python, the arguments "
        f"batch_size, memory_efficient and image_size."
    )


def find_split(data_dir):
    """The ``splits`` folder of ``prepare``'s output ``data_dir`` (or ``data_dir`` itself)."""
    data_dir = Path(data_dir)
    split_dir = data_dir if (data_dir / "train.csv").exists() else data_dir / "splits"
    if not (split_dir / "train.csv").exists():
        raise MissingInputError(
            f"No split in {split_dir}: run `python -m densenet_tutorial prepare --out {data_dir}` "
            f"first, and pass the same folder as --data."
        )
    return split_dir


@contextlib.contextmanager
def global_policy(policy):
    """Build models under the Keras dtype ``policy``; restore the previous one afterwards."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def build_run(split_dir, settings, strategy, global_batch):
    """The compiled model of a run, its training and validation data, and steps per epoch."""
    size, seed = settings["image_size"], settings["seed"]
    train_data = make_dataset(split_dir, "train", size, global_batch, shuffle=True, seed=seed)
    val_data = make_dataset(split_dir, "val", size, global_batch)
    if settings["quick"]:
        train_data = train_data.take(QUICK_STEPS_PER_EPOCH)
    steps_per_epoch = int(train_data.cardinality())
    with strategy.scope():
        network = build_densenet(
            blocks=settings["blocks"], growth_rate=settings["growth_rate"],
            compression=settings["compression"], input_shape=(size, size, 3),
            memory_efficient=settings["memory_efficient"],
        )  # fmt: skip
        model = AugmentedModel(network, augmentation(seed) if settings["augment"] else None)
        if settings["pretrained"]:
            load_imagenet_weights(network, settings["pretrained"])
        schedule = learning_rate_schedule(
            global_batch, steps_per_epoch, settings["epochs"], settings["learning_rate"]
        )
        compile_model(model, schedule)
        # The optimizer's slots now: Keras would create them inside the first training step, and
        # a tf.function whose first call creates variables is traced a second time without them
        # (TensorFlow's polymorphic_function.py, Function._call), which for DenseNet-169 costs
        # half a minute of CPU before the first step (measured: 0.66x the first fit's CPU time).
        model.optimizer.build(model.trainable_variables)
    return model, train_data, val_data, steps_per_epoch


def time_plan(model, decoding, val_data, steps_per_epoch, epochs, steps=5, warmup=2):
    """Measure the input pipeline and the training step apart, for ``steps`` batches each.

    The pipeline's rate is that of its first epoch: ``decoding`` is the training part read
    and decoded without cache or shuffling (later epochs read the cache, thousands of images
    per second; the shuffle buffer would hide the decoding behind one long first batch). The
    model's rate is that of training steps on one batch (``train_on_batch``, augmentation
    included) and of validation steps. The
    slower of the two sets the pace. Returns the rates, the limit, minutes per epoch and for
    the run, and the peak memory: the GPU's (``get_memory_info``), else the process's RSS.
    """
    import tensorflow as tf

    from densenet_tutorial.costs import peak_rss_mb

    def images_per_second(step, batches):
        """Images per second of ``steps`` calls of ``step`` after ``warmup`` untimed ones."""
        for _ in range(warmup):
            step(*next(batches))
        start = time.perf_counter()
        images = sum(step(*next(batches)) for _ in range(steps))
        return images / (time.perf_counter() - start)

    def read(images, labels):
        return len(labels)

    def train_step(images, labels):
        model.train_on_batch(images, labels)
        return len(labels)

    def validation_step(images, labels):
        model.test_on_batch(images, labels)
        return len(labels)

    gpu = bool(tf.config.list_logical_devices("GPU"))
    if gpu:
        tf.config.experimental.reset_memory_stats("GPU:0")
    pipeline = images_per_second(read, iter(decoding.repeat()))  # tiny splits: wrap around
    batch = next(iter(decoding))
    training = images_per_second(train_step, itertools.repeat(batch))
    validation = images_per_second(validation_step, itertools.repeat(batch))
    batch_size = len(batch[1])
    train_images = steps_per_epoch * batch_size
    val_images = int(val_data.cardinality()) * batch_size
    first = train_images / min(pipeline, training) + val_images / validation
    later = train_images / training + val_images / validation
    peak = tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20 if gpu else None
    return {
        "pipeline_images_per_second": pipeline,
        "training_images_per_second": training,
        "validation_images_per_second": validation,
        "first_epoch_limited_by": "input pipeline" if pipeline < training else "model",
        "minutes_first_epoch": first / 60,
        "minutes_per_later_epoch": later / 60,
        "epochs": epochs,
        "minutes_total": (first + (epochs - 1) * later) / 60,
        "peak_memory_mb": peak if gpu else peak_rss_mb(),
        "peak_memory_of": "GPU:0" if gpu else "process (RSS)",
    }


def format_time_plan(plan):
    """The time plan as a few lines for a learner."""
    return "\n".join([
        f"input pipeline (epoch 1, decoding): {plan['pipeline_images_per_second']:,.0f} img/s",
        f"training step:                      {plan['training_images_per_second']:,.1f} img/s",
        f"validation step:                    {plan['validation_images_per_second']:,.1f} img/s",
        f"epoch 1 is limited by the {plan['first_epoch_limited_by']}; later epochs by the model",
        f"minutes: epoch 1 {plan['minutes_first_epoch']:,.1f}, then "
        f"{plan['minutes_per_later_epoch']:,.1f} per epoch; all {plan['epochs']} epochs "
        f"{plan['minutes_total']:,.0f} ({plan['minutes_total'] / 60:,.1f} h)",
        f"peak memory ({plan['peak_memory_of']}): {plan['peak_memory_mb']:,.0f} MB",
    ])  # fmt: skip


def train(
    data_dir,
    out_dir,
    blocks=None,
    growth_rate=None,
    compression=0.5,
    image_size=None,
    batch_size=BATCH_SIZE,
    epochs=None,
    memory_efficient=False,
    seed=SEED,
    quick=False,
    precision="auto",
    deterministic=False,
    augment=True,
    learning_rate=LEARNING_RATE,
    pretrained=None,
    estimate=False,
    callbacks=(),
    verbose=1,
):
    """Train a DenseNet on the split ``prepare`` wrote; return the test metrics.

    ``data_dir`` is ``prepare``'s output folder (or the ``splits`` folder it returns).
    ``blocks``, ``growth_rate``, ``image_size`` and ``epochs`` left at ``None`` take the recipe's
    values (DenseNet-169, k = 32, 224 px, 40 epochs) or, with ``quick=True``, small ones (64 px,
    a 29-layer DenseNet, 5 epochs of at most 40 steps) that run in minutes on a CPU. The run
    folder ``out_dir`` receives ``config.json``, ``history.csv``, TensorBoard ``logs/``,
    ``best.keras`` (best validation accuracy), ``backup/``, then ``metrics.json`` and the figures
    of the test split. Rerunning with the same settings resumes after the last finished epoch.
    ``augment=False`` trains on the images as they are (no ``augmentation()`` in the step).
    ``learning_rate`` is the peak rate per 256 images (scaled with the batch). ``pretrained``
    (``"imagenet"`` or a weights file) starts DenseNet-169 from keras.applications' weights
    (``pretrained.load_imagenet_weights``) instead of random ones: fine-tuning.
    ``estimate=True`` trains nothing and writes nothing: it measures a few steps of the input
    pipeline and of the model on this machine and returns the time plan (``time_plan``).
    ``callbacks`` are extra Keras callbacks; ``verbose`` is passed to ``Model.fit``.
    """
    import tensorflow as tf

    split_dir, out_dir = find_split(data_dir), Path(out_dir)
    settings = resolve_settings(
        split_dir, quick, blocks=blocks, growth_rate=growth_rate, compression=compression,
        image_size=image_size, batch_size=batch_size, epochs=epochs,
        memory_efficient=memory_efficient, seed=seed, precision=precision,
        deterministic=deterministic, augment=augment, learning_rate=learning_rate,
        pretrained=None if pretrained is None else str(pretrained),
    )  # fmt: skip
    resume = check_run_folder(out_dir, settings)

    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    strategy = pick_strategy()
    policy = pick_precision(strategy, precision)
    global_batch = global_batch_size(strategy, settings["batch_size"])
    with global_policy(policy):
        try:
            model, train_data, val_data, steps_per_epoch = build_run(
                split_dir, settings, strategy, global_batch
            )
            if estimate:
                decoding = make_dataset(split_dir, "train", settings["image_size"], global_batch,
                                        cache=False)  # fmt: skip
                return time_plan(model, decoding, val_data, steps_per_epoch, settings["epochs"])
            if not resume:
                out_dir.mkdir(parents=True, exist_ok=True)
                record = environment(strategy, policy)
                record.update(global_batch_size=global_batch, steps_per_epoch=steps_per_epoch)
                config = {"settings": settings, "run": record}
                (out_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
            model.fit(
                train_data,
                validation_data=val_data,
                epochs=settings["epochs"],
                shuffle=False,  # make_dataset shuffles; Keras would only warn that it cannot
                callbacks=make_callbacks(out_dir) + list(callbacks),
                verbose=verbose,
            )
            size = settings["image_size"]
            return evaluate_run(out_dir, split_dir, size, global_batch, strategy, verbose=verbose)
        except tf.errors.ResourceExhaustedError as error:
            raise RunError(out_of_memory_message(settings, global_batch)) from error
