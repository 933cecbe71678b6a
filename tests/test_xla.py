"""XLA in the training step: what Keras decides on a GPU, and a real XLA step on this CPU.

Keras compiles ``fit``'s step with XLA (``jit_compile="auto"``) only on a machine with a
device other than a CPU, without a ``tf.distribute`` strategy, and when every layer supports
it (``Trainer._resolve_auto_jit_compile`` and ``model_supports_jit``, keras/src/trainers/
trainer.py, the same in Keras 3.13.2, Colab's, and 3.15). This machine has no GPU, so
``simulated_gpu`` adds one exactly where Keras looks; the decision itself is Keras's own code.
"""

import json
import os
import re
import subprocess
import sys
import textwrap
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import Record, StopAfter

from benchmarks.legacy import KerasLayersAugmentation
from densenet_tutorial import training
from densenet_tutorial.config import run_config
from densenet_tutorial.data import augmentation
from densenet_tutorial.model import build_densenet

SHAPE = (32, 32, 3)


@pytest.fixture
def simulated_gpu(monkeypatch):
    """A GPU where Keras decides on XLA, and nowhere else.

    ``_resolve_auto_jit_compile`` turns XLA off when ``tf.config.list_physical_devices()``,
    asked without a device type, lists only CPUs. The stand-in adds a GPU to that one list;
    what asks for GPUs by type (the precision, the strategy, the memory figures) still sees
    this machine. Where it differs from a T4: the step is then compiled by XLA for the CPU,
    so the figures and the float16 kernels are the CPU's.
    """
    real = tf.config.list_physical_devices
    gpu = tf.config.PhysicalDevice(name="/physical_device:GPU:0", device_type="GPU")

    def listed(device_type=None):
        return real(device_type) + ([gpu] if device_type is None else [])

    monkeypatch.setattr(tf.config, "list_physical_devices", listed)


def decisions(augmentations):
    """Keras's XLA decision for the bare network and for a training model per augmentation."""
    network = build_densenet(blocks=(1, 1), growth_rate=4, input_shape=SHAPE)
    network.compile(optimizer="sgd", loss="mse")  # as evaluate_run and notebooks 04 and 06
    models = {
        name: training.training_model(network, augment, 0.01)
        for name, augment in augmentations.items()
    }
    return {"bare network": network.jit_compile} | {
        name: model.jit_compile for name, model in models.items()
    }


def augmentations():
    return {
        "augmentation()": augmentation(0),
        "Keras layers (before)": KerasLayersAugmentation(0),
        "no augmentation": None,
    }


def test_on_a_gpu_keras_compiles_the_training_model_with_xla_and_not_the_one_before(
    simulated_gpu,
):
    assert decisions(augmentations()) == {
        "bare network": True,
        "augmentation()": True,  # every layer supports XLA
        "Keras layers (before)": False,  # RandomRotation and RandomZoom do not
        "no augmentation": True,
    }


def test_on_a_cpu_keras_keeps_xla_off_for_all():
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU")
    assert not any(decisions(augmentations()).values())


def test_asked_for_xla_keras_refuses_the_augmentation_before_and_keeps_ours():
    """``compile(jit_compile=True)`` on a layer without XLA support only warns, then runs
    without XLA (``Trainer.jit_compile``'s setter)."""
    network = build_densenet(blocks=(1, 1), growth_rate=4, input_shape=SHAPE)
    before = training.training_model(network, KerasLayersAugmentation(0), 0.01)
    with pytest.warns(UserWarning, match="doesn't support `jit_compile=True`"):
        before.jit_compile = True
    assert before.jit_compile is False
    ours = training.training_model(network, augmentation(0), 0.01)
    ours.jit_compile = True
    assert ours.jit_compile is True


def test_an_xla_training_step_runs_on_this_cpu_in_mixed_float16():
    """The step a T4 runs: XLA, float16 with loss scaling, the augmentation inside."""
    keras.utils.set_random_seed(0)
    with training.global_policy("mixed_float16"):
        network = build_densenet(blocks=(1, 1), growth_rate=4, input_shape=SHAPE)
        model = training.training_model(network, augmentation(0), 0.05)
        model.jit_compile = True  # what compile(jit_compile=True) sets
    assert model.jit_compile is True
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert model.network.layers[-2].compute_dtype == "float16"  # the pooling, before the logit
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (8, *SHAPE)).astype("uint8")
    labels = rng.integers(0, 2, (8, 1)).astype("float32")
    start = [w.numpy() for w in network.trainable_weights]
    losses = [model.train_on_batch(images, labels)[0] for _ in range(3)]
    assert model.jit_compile is True and int(model.optimizer.iterations) == 3
    assert np.isfinite(losses).all()
    assert float(model.optimizer.scale_loss(1.0)) > 1  # the loss was scaled
    now = [w.numpy() for w in network.trainable_weights]
    assert max(float(np.abs(a - b).max()) for a, b in zip(now, start, strict=True)) > 1e-4


def test_train_fits_with_xla_on_a_gpu_and_resumes_with_xla(simulated_gpu, tmp_path_factory):
    """``train``'s model compiles with XLA, and so does it again after an interruption."""
    from densenet_tutorial.data import prepare, synthesize

    base = tmp_path_factory.mktemp("xla")
    synthesize(base / "source", per_class=60, size=(64, 48))
    split = prepare(source=base / "source", out=base / "data", val_per_class=10,
                    test_per_class=10, progress=False)  # fmt: skip
    settings = run_config(True, image_size=16, blocks=(1,), growth_rate=4, batch_size=16,
                          epochs=2, seed=1, precision="float32")  # fmt: skip
    first, resumed = Record(), Record()
    with pytest.raises(KeyboardInterrupt):
        training.train(split, base / "run", settings, [first, StopAfter(0)], verbose=0)
    metrics = training.train(split, base / "run", settings, [resumed], verbose=0)
    config = json.loads((base / "run" / "config.json").read_text())
    assert first.xla is True and config["run"]["xla"] is True
    assert resumed.xla is True and resumed.epochs == [1]
    # The step count the uninterrupted run had: the augmentation draws what it would have.
    assert resumed.start_step == config["run"]["steps_per_epoch"]
    assert metrics["images"] == 20


# --- what XLA compiles: one training-step shape per run; memory-efficient mode --------------

XLA_RUN = textwrap.dedent(
    """
    import json, sys, warnings
    warnings.simplefilter("ignore")
    import tensorflow as tf
    from densenet_tutorial import training
    from densenet_tutorial.config import run_config

    real = tf.config.list_physical_devices  # the simulated GPU of this module, as a script
    gpu = tf.config.PhysicalDevice(name="/physical_device:GPU:0", device_type="GPU")
    tf.config.list_physical_devices = lambda kind=None: real(kind) + ([gpu] * (kind is None))
    config = run_config(True, image_size=16, blocks=(1,), growth_rate=4, batch_size=16,
                        epochs=2, seed=1, precision="float32")
    training.train(sys.argv[1], sys.argv[2], config, verbose=0)
    """
)


def xla_compiles(dump):
    """``{function: [its first argument's shape, per compile]}``, in the order compiled, from
    the HLO modules XLA dumped (``--xla_dump_to``): one module per compile."""
    compiles = {}
    for path in sorted(dump.glob("module_*.before_optimizations.txt")):
        text = path.read_text()
        function = re.search(r"HloModule (\w+?__)", text).group(1)
        shape = re.search(r"ENTRY \S+ \(arg0\.\d+: (\w+\[[\d,]*\])", text).group(1)
        compiles.setdefault(function, []).append(shape)
    return compiles


def run_with_xla_dump(script, tmp_path, *args):
    dump = tmp_path / "xla"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2",
           "XLA_FLAGS": f"--xla_dump_to={dump}"}  # fmt: skip
    done = subprocess.run([sys.executable, "-c", script, *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done, dump


def test_a_run_compiles_its_training_step_once(tmp_path):
    """Full training batches only (``training_steps``): one input shape, one XLA compile of
    the training step per run, whatever the number of training images. Validation keeps every
    image, so its step is compiled once per batch size it meets (two where the last is short).
    Before, the short last training batch compiled the training step a second time."""
    from densenet_tutorial.data import prepare, read_split, synthesize

    synthesize(tmp_path / "source", per_class=45, size=(48, 36))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "fewer than 25,000 images"
        split = prepare(source=tmp_path / "source", out=tmp_path / "data", val_per_class=9,
                        test_per_class=5, progress=False, workers=1)  # fmt: skip
    train_images, val_images = (len(read_split(split, part)[1]) for part in ("train", "val"))
    assert train_images % 16 and val_images % 16  # both end in a short batch
    _, dump = run_with_xla_dump(XLA_RUN, tmp_path, split, tmp_path / "run")
    (training_step, validation_step) = xla_compiles(dump).values()  # in the order compiled
    assert training_step == ["u8[16,16,16,3]"]
    assert sorted(validation_step) == sorted(["u8[16,16,16,3]", f"u8[{val_images % 16},16,16,3]"])


XLA_STEP = textwrap.dedent(
    """
    import sys, warnings
    warnings.simplefilter("ignore")
    import numpy as np
    from densenet_tutorial import training
    from densenet_tutorial.model import build_densenet

    network = build_densenet(blocks=(4, 4), growth_rate=12, input_shape=(32, 32, 3),
                             memory_efficient=sys.argv[1] == "True")
    model = training.training_model(network, None, 0.01)
    model.jit_compile = True
    images = np.random.default_rng(0).integers(0, 256, (16, 32, 32, 3)).astype("uint8")
    model.train_on_batch(images, np.zeros((16, 1), "float32"))
    """
)


def xla_bytes(tmp_path, memory_efficient):
    """The bytes XLA's buffer assignment gives the training step (``Total bytes used``)."""
    _, dump = run_with_xla_dump(XLA_STEP, tmp_path / str(memory_efficient), memory_efficient)
    (report,) = dump.glob("*one_step_on_data*buffer-assignment.txt")
    return int(re.search(r"Total bytes used: (\d+)", report.read_text()).group(1))


def test_under_xla_memory_efficient_mode_saves_nothing(tmp_path):
    """Recomputing the bottlenecks in the backward pass (``memory_efficient.Recomputed``)
    halves TensorFlow's tensor memory without XLA (docs/benchmarks.md); XLA ignores the
    control dependency that orders it after the incoming gradient and merges it back into the
    forward pass, so its buffer assignment totals the same bytes (TensorFlow 2.21, CPU; an
    optimisation barrier, ``XlaOptimizationBarrier``, does not help there: XLA's CPU pipeline
    expands it before its last common-subexpression pass). The out-of-memory advice says so;
    if this fails, XLA keeps the recomputation and the advice can change back."""
    standard, recomputed = xla_bytes(tmp_path, False), xla_bytes(tmp_path, True)
    assert 0.97 < recomputed / standard < 1.03, (standard, recomputed)
