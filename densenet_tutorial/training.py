"""Training: join the DenseNet (``model``) and the input pipeline (``data``) in a run folder.

``train(data_dir, out_dir, config)`` is what the notebooks call and what
``python -m densenet_tutorial train`` wraps; ``config`` is a ``config.RunConfig``. One short
function per decision:

- ``pick_strategy``: ``MirroredStrategy`` on several GPUs, the default strategy otherwise; the
  global batch is the per-replica batch times the replicas;
- ``pick_precision``: float16 on GPUs with tensor cores, bfloat16 on CPUs with bfloat16
  instructions, float32 otherwise (the model computes its logit in float32 anyway);
- ``learning_rate_schedule``, ``make_optimizer``, ``compile_model``: the recipe (see the README);
- ``training_model``: the network behind the augmentation, compiled: what ``fit`` trains and
  what the time plan (``densenet_tutorial.timeplan``) and ``densenet_tutorial.costs`` measure;
- ``recorded_settings``: what the run folder keeps of a run, the configuration and the recipe,
  so that a rerun resumes only the same run (``run_folder``; the training state:
  ``checkpoints``).

The test split is touched once, after training, by ``densenet_tutorial.evaluate``.
"""

import contextlib
from pathlib import Path

import keras

from densenet_tutorial import checkpoints, hardware
from densenet_tutorial.config import RunConfig
from densenet_tutorial.data import PARTS, augmentation, make_dataset, read_split
from densenet_tutorial.data.files import recover
from densenet_tutorial.data.pipeline import training_epochs, training_steps
from densenet_tutorial.errors import MissingInputError, RunError
from densenet_tutorial.evaluate import evaluate_run
from densenet_tutorial.model import build_densenet
from densenet_tutorial.pretrained import load_imagenet_weights
from densenet_tutorial.run_folder import (
    check_run_folder,
    make_callbacks,
    write_config,
    write_failure,
)

# The recipe: "Bag of Tricks" (He et al., CVPR 2019) applied to the paper's SGD (Sec. 4.2).
SEED = RunConfig.seed
LEARNING_RATE = RunConfig.learning_rate  # per 256 images: the paper's ImageNet rate, 0.1
REFERENCE_BATCH = 256  # (Goyal et al. 2017, "linear scaling rule")
MOMENTUM = 0.9  # Nesterov, as the paper
WEIGHT_DECAY = 1e-3  # decoupled; = the paper's L2 of 1e-4 / (1 - momentum), see make_optimizer
WARMUP_FRACTION = 0.05  # linear warm-up over the first 5 % of steps (2 of 40 epochs)
LABEL_SMOOTHING = 0.1
NO_WEIGHT_DECAY = ("gamma", "beta", "bias")  # BatchNormalization scale/offset and the Dense bias
RECIPE = {  # as config.json records it, so that a changed recipe does not resume an old run
    "optimizer": "SGD, Nesterov momentum",
    "momentum": MOMENTUM,
    "warmup_fraction": WARMUP_FRACTION,
    "schedule": "linear warm-up from 0, then cosine decay to 0",
    "weight_decay_decoupled": WEIGHT_DECAY,
    "no_weight_decay": list(NO_WEIGHT_DECAY),
    "label_smoothing": LABEL_SMOOTHING,
    "loss": "binary cross-entropy on the logit",
}


def pick_strategy():
    """``MirroredStrategy`` on two or more GPUs, else the default strategy (one device)."""
    import tensorflow as tf

    if len(tf.config.list_physical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def global_batch_size(strategy, batch_size):
    """Each replica gets ``batch_size`` images, so one step sees this many."""
    return batch_size * strategy.num_replicas_in_sync


def pick_precision(precision="auto"):
    """The Keras dtype policy: ``precision`` itself unless it is ``"auto"``.

    Auto: mixed float16 on GPUs with tensor cores (compute capability 7.0 or newer), mixed
    bfloat16 on CPUs with bfloat16 instructions, float32 otherwise. Mixed precision keeps the
    variables in float32 and computes in 16 bits (Micikevicius et al. 2018).
    """
    if precision != "auto":
        return precision
    gpus = hardware.gpus()
    if gpus:
        return "mixed_float16" if all(map(hardware.gpu_supports_float16, gpus)) else "float32"
    return "mixed_bfloat16" if hardware.cpu_supports_bfloat16() else "float32"


def learning_rate_schedule(global_batch, steps_per_epoch, epochs, learning_rate=LEARNING_RATE):
    """Linear warm-up from 0 (He et al. 2019, Sec. 3.1), then cosine decay to 0 (Loshchilov &
    Hutter 2017).

    The peak is ``learning_rate * global_batch / REFERENCE_BATCH`` (Goyal et al. 2017's linear
    scaling; they warm up from the small-batch rate, not from 0): 0.0125 for a batch of 32 with
    the paper's 0.1 per 256 images.
    """
    total_steps = steps_per_epoch * epochs
    warmup_steps = max(1, round(WARMUP_FRACTION * total_steps))
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0,
        decay_steps=max(1, total_steps - warmup_steps),  # a run of one step: no decay left
        warmup_target=learning_rate * global_batch / REFERENCE_BATCH,
        warmup_steps=warmup_steps,
    )


def make_optimizer(learning_rate):
    """SGD with Nesterov momentum 0.9 and weight decay on the kernels (convolutions, classifier).

    Keras applies ``weight_decay`` decoupled (``w -= lr * wd * w`` outside the momentum, Loshchilov
    & Hutter 2019). The paper's L2 penalty of 1e-4 passes through the momentum, which scales its
    steady-state effect by 1 / (1 - momentum), so the same shrinkage is ``1e-4 / (1 - 0.9)``.
    BatchNormalization's scale gamma and shift beta and the classifier's bias are not decayed
    ("no bias decay", He et al. 2019, Sec. 3.1: only the weights of convolutions and fully
    connected layers are regularised).
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


def recorded_settings(split_dir, config):
    """What ``config.json`` keeps of a run and a rerun must match: the data, ``config``, the
    recipe."""
    return {"split_dir": str(Path(split_dir).resolve()), **config.to_dict(), **RECIPE,
            "steps_per_epoch_cap": config.steps_per_epoch_cap}  # fmt: skip


def environment(strategy, policy):
    """The machine and libraries (``hardware.environment``), the strategy and the precision."""
    record = hardware.environment()
    record["hardware"].update(strategy=type(strategy).__name__,
                              replicas=strategy.num_replicas_in_sync)  # fmt: skip
    return {**record, "precision": policy}


class AugmentedModel(keras.Model):
    """The network with the training augmentation in front of it, applied only in training.

    ``fit`` calls the model with ``training=True``: the batch is augmented inside the
    training step, on the device that trains (each replica its own share), in float32, with
    the draws of this training step (``optimizer.iterations``), so a resumed run augments as
    the uninterrupted one would have. The default is ``training=False``, so ``evaluate``,
    ``predict`` and ``model(x)`` see the images as they are. Only ``network``, the bare
    DenseNet, is saved as the run's model.
    """

    def __init__(self, network, augmentation=None, **kwargs):
        super().__init__(**kwargs)
        self.network = network
        self.augmentation = augmentation
        self.build(network.input.shape)  # built from the start: a resume restores its state

    def build(self, input_shape):
        if self.augmentation is not None:
            self.augmentation.build(input_shape)

    def call(self, images, training=False):
        if training and self.augmentation is not None:
            optimizer = getattr(self, "optimizer", None)  # none before compile
            step = 0 if optimizer is None else optimizer.iterations
            images = self.augmentation(images, step=step)
        return self.network(images, training=training)


def training_model(network, augmentation, learning_rate):
    """What ``fit`` trains: ``network`` behind ``augmentation`` (or none), compiled with the recipe.

    Keras decides here whether the training step is compiled with XLA (``jit_compile="auto"``:
    on a GPU, when every layer supports it, as ``augmentation()`` does); ``model.jit_compile``
    tells. Build it under the strategy's scope and the precision's policy.
    """
    return compile_model(AugmentedModel(network, augmentation), learning_rate)


def out_of_memory_message(config, global_batch):
    return (
        f"Out of memory training with {global_batch} images of {config.image_size} px per "
        f"step (batch size {config.batch_size} per replica). Try a smaller batch "
        f"(--batch-size {max(1, config.batch_size // 2)}) or smaller images "
        f"(--image-size {config.image_size // 2}); in Python, the settings batch_size "
        f"and image_size. --memory-efficient (recompute the dense layers' bottlenecks instead "
        f"of storing them) saves memory only where the step runs without XLA: XLA, which "
        f"Keras turns on for one GPU, merges the recomputation back into the forward pass."
    )


def find_split(data_dir):
    """The ``splits`` folder of ``prepare``'s output ``data_dir`` (or ``data_dir`` itself)."""
    data_dir = Path(data_dir)
    split_dir = data_dir if (data_dir / "train.csv").exists() else data_dir / "splits"
    if not recover(split_dir / "train.csv").exists():
        raise MissingInputError(
            f"No split in {split_dir}: run `python -m densenet_tutorial prepare --out {data_dir}` "
            f"first, and pass the same folder as --data."
        )
    for part in PARTS:  # each manifest read once now: a damaged one stops before any training
        read_split(split_dir, part)
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


@contextlib.contextmanager
def op_determinism(enabled):
    """Deterministic TensorFlow ops inside the block if ``enabled``, the setting restored after.

    Deterministic ops are slower, and Keras keeps XLA off while they are on
    (``Trainer._resolve_auto_jit_compile``), so they must not outlive the run that asked for
    them: a later run in the same kernel would lose XLA. TensorFlow exports only the switch
    on (``tf.config.experimental.enable_op_determinism``); the switch back is its
    ``disable_op_determinism``, beside it in ``tensorflow/python/framework/config.py``.
    """
    import tensorflow as tf
    from tensorflow.python.framework import config

    was_enabled = config.is_op_determinism_enabled()
    if enabled:
        tf.config.experimental.enable_op_determinism()
    try:
        yield
    finally:
        if not was_enabled:
            config.disable_op_determinism()


def build_network(config):
    """The DenseNet of ``config``, from ImageNet's weights if ``config.pretrained`` says so."""
    size = config.image_size
    network = build_densenet(
        blocks=config.blocks, growth_rate=config.growth_rate, compression=config.compression,
        input_shape=(size, size, 3), memory_efficient=config.memory_efficient,
    )  # fmt: skip
    if config.pretrained:
        load_imagenet_weights(network, config.pretrained)
    return network


def build_run(split_dir, config, strategy, global_batch):
    """The compiled model of a run (a ``RunConfig``), its validation data, steps per epoch."""
    val_data = make_dataset(split_dir, "val", config.image_size, global_batch)
    train_images = len(read_split(split_dir, "train")[1])
    steps_per_epoch = training_steps(train_images, global_batch, config.steps_per_epoch_cap)
    with strategy.scope():
        network = build_network(config)
        schedule = learning_rate_schedule(
            global_batch, steps_per_epoch, config.epochs, config.learning_rate
        )
        augment = augmentation(config.seed) if config.augment else None
        model = training_model(network, augment, schedule)
        # The optimizer's slots now: Keras would create them inside the first training step, and
        # a tf.function whose first call creates variables is traced a second time without them
        # (TensorFlow's polymorphic_function.py, Function._call), which for DenseNet-169 costs
        # half a minute of CPU before the first step (measured: 0.66x the first fit's CPU time);
        # and each momentum variable would get an initialisation graph that outlives the run
        # (+10 MB per run of a tiny DenseNet, measured).
        model.optimizer.build(model.trainable_variables)
    return model, val_data, steps_per_epoch


def training_data(split_dir, config, global_batch, steps_per_epoch, first_epoch):
    """The training batches of epochs ``first_epoch`` (0-based) to the last, each epoch in the
    order its number and the seed give it (``data.pipeline.training_epochs``)."""
    epochs = range(first_epoch, config.epochs)
    return training_epochs(split_dir, epochs, config.image_size, global_batch,
                           seed=config.seed, steps_per_epoch=steps_per_epoch)  # fmt: skip


def first_minutes(model, images):
    """The line said before ``fit`` starts: what the first minutes of the run are spent on."""
    compile_ = "compiled with XLA" if model.jit_compile else "traced"
    return (
        f"Before the first progress: the training step is {compile_} (on a GPU with XLA, "
        f"minutes), and the first epoch decodes its {images:,} photos as it goes (each once; "
        f"later epochs read them from memory)."
    )


def train(data_dir, out_dir, config=None, callbacks=(), verbose=1):
    """Train a DenseNet on the split ``prepare`` wrote; return the test metrics.

    ``data_dir`` is ``prepare``'s output folder (or the ``splits`` folder it returns);
    ``config`` a ``RunConfig`` (``config.run_config``; None: the full run, DenseNet-169, k = 32,
    224 px, 40 epochs). The run folder ``out_dir`` receives ``config.json``, ``history.csv``,
    TensorBoard ``logs/``, ``best.keras`` (best validation accuracy), ``backup/``, then
    ``metrics.json`` and the figures of the test split. Rerunning with the same configuration
    resumes after the last finished epoch, as if never interrupted (``checkpoints``: a damaged
    backup falls back to the state before, or to epoch 1, and says so); a finished run trains
    no further. A write to ``out_dir`` that fails (a full disk or Drive) stops with a
    ``RunError`` that says what was kept. ``callbacks`` are extra Keras callbacks; ``verbose``
    is passed to ``Model.fit``.
    """
    import tensorflow as tf

    config = config or RunConfig()
    split_dir, out_dir = find_split(data_dir), Path(out_dir)
    settings = recorded_settings(split_dir, config)
    resume = check_run_folder(out_dir, settings)

    keras.utils.set_random_seed(config.seed)
    strategy = pick_strategy()
    policy = pick_precision(config.precision)
    global_batch = global_batch_size(strategy, config.batch_size)
    backup, registered = None, hardware.custom_gradients()
    try:
        with global_policy(policy), op_determinism(config.deterministic):
            model, val_data, steps_per_epoch = build_run(split_dir, config, strategy, global_batch)
            if resume:  # the newest training state that loads, checked before anything trains
                backup, done = checkpoints.resume(out_dir, model, config.epochs, verbose)
            else:
                backup, done = checkpoints.TrainingBackup(out_dir / checkpoints.BACKUP), 0
            if not (out_dir / "config.json").exists():  # a new run, or a damaged one set aside
                record = environment(strategy, policy)
                record.update(global_batch_size=global_batch, steps_per_epoch=steps_per_epoch,
                              xla=bool(model.jit_compile))  # fmt: skip
                write_config(out_dir, settings, record)
            if done < config.epochs:  # a finished run trains no further
                train_data = training_data(split_dir, config, global_batch, steps_per_epoch, done)
                if verbose:
                    print(first_minutes(model, len(read_split(split_dir, "train")[1])))
                model.fit(
                    train_data,
                    validation_data=val_data,
                    epochs=config.epochs,
                    initial_epoch=done,
                    steps_per_epoch=steps_per_epoch,
                    shuffle=False,  # training_epochs shuffles; Keras would only warn it cannot
                    callbacks=make_callbacks(out_dir, backup) + list(callbacks),
                    verbose=verbose,
                )
            size = config.image_size
            return evaluate_run(out_dir, split_dir, size, global_batch, strategy, verbose=verbose)
    except tf.errors.ResourceExhaustedError as error:
        raise RunError(out_of_memory_message(config, global_batch)) from error
    except OSError as error:  # a write to the run folder: Python's own file operations
        failure = write_failure(error, out_dir, backup, config.epochs)
        if failure is None:
            raise
        raise failure from error
    finally:
        model = train_data = val_data = None  # this run's model and cached images
        hardware.release_memory(registered)
