"""XLA in the training step: what Keras decides on a GPU, and a real XLA step on this CPU.

Keras compiles ``fit``'s step with XLA (``jit_compile="auto"``) only on a machine with a
device other than a CPU, without a ``tf.distribute`` strategy, and when every layer supports
it (``Trainer._resolve_auto_jit_compile`` and ``model_supports_jit``, keras/src/trainers/
trainer.py, the same in Keras 3.13.2, Colab's, and 3.15). This machine has no GPU, so
``simulated_gpu`` adds one exactly where Keras looks; the decision itself is Keras's own code.
"""

import json

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
