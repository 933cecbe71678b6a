"""The model against its independent references: keras.applications and the paper's arithmetic."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from densenet_tutorial import model as densenet
from densenet_tutorial.architecture import architecture_table
from densenet_tutorial.memory_efficient import Recomputed

# One-logit head, stem 2k: the counts of the same networks built with keras.applications'
# DenseNet code (weights=None, include_top=False, pooling="avg") plus a Dense(1) logit.
PARAMETER_COUNTS = [
    (densenet.densenet121, 32, 7_038_529),
    (densenet.densenet169, 32, 12_644_545),
    (densenet.densenet201, 32, 18_323_905),
    (densenet.densenet264, 32, 31_049_921),
    (densenet.densenet169, 12, 1_854_985),
    (densenet.densenet169, 24, 7_174_033),
]


@pytest.mark.parametrize(("preset", "growth_rate", "expected"), PARAMETER_COUNTS)
def test_parameter_counts_match_the_reference(preset, growth_rate, expected):
    model = preset(growth_rate=growth_rate, input_shape=(32, 32, 3))
    assert model.count_params() == expected


@pytest.mark.parametrize("compression", [0.5, 0.3, 1.0])
def test_channels_grow_by_k_per_layer_and_transitions_compress(compression):
    blocks, k, k0 = (3, 5, 4), 7, 11
    model = densenet.build_densenet(
        blocks, growth_rate=k, compression=compression, stem_channels=k0, input_shape=(32, 32, 3)
    )
    channels = k0
    for b, n in enumerate(blocks, start=2):
        for i in range(1, n + 1):  # Eq. 2: layer i adds k maps to the stack
            assert model.get_layer(f"conv{b}_block{i}_concat").output.shape[-1] == channels + i * k
        channels += n * k
        if b <= len(blocks):
            channels = math.floor(compression * channels)
            assert model.get_layer(f"pool{b}_conv").output.shape[-1] == channels
    assert model.get_layer("relu").output.shape[-1] == channels


def _randomize_batch_norm(model, seed=0):
    """Give every BN layer non-trivial gamma, beta and moving statistics."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, gamma.shape),
                    rng.normal(0, 0.1, beta.shape),
                    rng.normal(0, 0.1, mean.shape),
                    rng.uniform(0.5, 1.5, variance.shape),
                ]
            )


REFERENCES = [
    (densenet.densenet121, keras.applications.DenseNet121),
    (densenet.densenet169, keras.applications.DenseNet169),
    (densenet.densenet201, keras.applications.DenseNet201),
]


@pytest.mark.parametrize(("preset", "reference"), REFERENCES)
def test_same_weights_compute_what_keras_applications_computes(preset, reference):
    keras.utils.set_random_seed(1)
    shape = (64, 64, 3)
    theirs = reference(weights=None, include_top=False, input_shape=shape)
    _randomize_batch_norm(theirs)
    ours = preset(input_shape=shape)
    copied = 0
    for layer in theirs.layers:
        if layer.weights:
            ours.get_layer(layer.name).set_weights(layer.get_weights())
            copied += 1
    assert copied == sum(1 for layer in ours.layers if layer.weights) - 1  # all but the head

    pixels = np.random.default_rng(2).uniform(0, 255, (2, *shape)).astype("float32")
    features = keras.Model(ours.input, ours.get_layer("relu").output)
    scaled = keras.applications.densenet.preprocess_input(pixels.copy())  # it works in place
    expected = theirs.predict(scaled, verbose=0)
    actual = features.predict(pixels, verbose=0)
    relative = np.max(np.abs(actual - expected)) / np.max(np.abs(expected))
    assert relative < 1e-4


def test_layer_names_follow_keras_applications():
    ours = {layer.name for layer in densenet.densenet121(input_shape=(32, 32, 3)).layers}
    theirs = keras.applications.DenseNet121(weights=None, input_shape=(32, 32, 3)).layers
    names = {layer.name for layer in theirs if not layer.name.startswith(("input", "zero_pad"))}
    assert names - ours == set()


def test_first_layer_does_keras_preprocessing_itself():
    pixels = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3)).astype("uint8")
    model = densenet.build_densenet((1, 1), growth_rate=4, input_shape=(32, 32, 3))
    normalized = model.get_layer("normalize")(pixels.astype("float32"))
    expected = keras.applications.densenet.preprocess_input(pixels.astype("float32"))
    np.testing.assert_allclose(normalized, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        model.predict(pixels, verbose=0), model.predict(pixels.astype("float32"), verbose=0)
    )


def test_head_gives_logits_for_one_or_more_classes():
    tiny = {"blocks": (1, 1), "growth_rate": 4, "input_shape": (32, 32, 3)}
    binary = densenet.build_densenet(**tiny)
    assert binary.output.shape == (None, 1)
    assert binary.get_layer("predictions").get_config()["activation"] == "linear"
    multi = densenet.build_densenet(**tiny, num_classes=5, pooling="max", dropout=0.2)
    assert multi.output.shape == (None, 5)
    assert {"max_pool", "dropout"} <= {layer.name for layer in multi.layers}


BAD_CONFIGS = [
    ({"growth_rate": 0}, "growth_rate"),
    ({"compression": 0.0}, "compression"),
    ({"compression": 1.5}, "compression"),
    ({"blocks": ()}, "blocks"),
    ({"blocks": (6, 0, 3)}, "blocks"),
    ({"input_shape": (16, 16, 3)}, "input_shape"),
    ({"input_shape": (224, 224, 1)}, "input_shape"),
    ({"num_classes": 0}, "num_classes"),
    ({"pooling": "mean"}, "pooling"),
    ({"bottleneck_width": 0}, "bottleneck_width"),
]


@pytest.mark.parametrize(("overrides", "parameter"), BAD_CONFIGS)
def test_bad_configurations_name_the_parameter(overrides, parameter):
    config = {"blocks": (2, 2, 2, 2), "growth_rate": 4, "input_shape": (64, 64, 3)} | overrides
    with pytest.raises(ValueError, match=rf"^{parameter}="):
        densenet.build_densenet(**config)


def test_smallest_input_is_the_one_the_downsampling_allows():
    # 29 px: conv1 (pad 3, 7x7, stride 2) -> 15, pool1 (pad 1, 3x3, stride 2) -> 8, then 4, 2, 1.
    assert densenet.smallest_input_size(4) == 29
    model = densenet.build_densenet((1, 1, 1, 1), growth_rate=2, input_shape=(29, 29, 3))
    assert model.get_layer("relu").output.shape[1:3] == (1, 1)
    with pytest.raises(ValueError, match="at least 29x29"):
        densenet.build_densenet((1, 1, 1, 1), growth_rate=2, input_shape=(28, 28, 3))


def test_architecture_table_adds_up():
    model = densenet.densenet169(growth_rate=12, input_shape=(96, 96, 3))
    rows = architecture_table(model)
    assert [row["stage"] for row in rows] == [
        "stem", "dense block 1", "transition 1", "dense block 2", "transition 2",
        "dense block 3", "transition 3", "dense block 4", "head",
    ]  # fmt: skip
    assert sum(row["params"] for row in rows) == model.count_params()
    sizes = densenet.spatial_sizes(96, 4)
    assert [row["output_size"] for row in rows if row["stage"].startswith("dense")] == [
        (s, s) for s in sizes
    ]
    assert rows[1]["input_channels"] == 24 and rows[1]["output_channels"] == 24 + 6 * 12


def test_saved_model_loads_back_with_identical_outputs(tmp_path):
    model = densenet.build_densenet((2, 2), growth_rate=4, input_shape=(32, 32, 3))
    path = tmp_path / "tiny.keras"
    model.save(path)
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(
        loaded.predict(pixels, verbose=0), model.predict(pixels, verbose=0)
    )


# Memory-efficient mode: same function, same gradients, BN statistics updated once per step.

TINY = {"blocks": (2, 3), "growth_rate": 4, "input_shape": (32, 32, 3)}


def _twins(**extra):
    """A standard and a memory-efficient model holding the same weights."""
    keras.utils.set_random_seed(3)
    standard = densenet.build_densenet(**TINY, **extra)
    efficient = densenet.build_densenet(**TINY, **extra, memory_efficient=True)
    efficient.set_weights(standard.get_weights())
    return standard, efficient


def _batch(n=8, seed=4):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, (n, 32, 32, 3)).astype("float32"), rng.integers(0, 2, (n, 1))


def test_memory_efficient_model_has_the_same_weights_and_outputs():
    standard, efficient = _twins()

    def names(model):  # the efficient model nests some layers: compare "layer/weight"
        return ["/".join(w.path.split("/")[-2:]) for w in model.weights]

    assert names(standard) == names(efficient)
    assert efficient.count_params() == standard.count_params()
    x, _ = _batch()
    for training in (False, True):
        np.testing.assert_allclose(
            efficient(x, training=training), standard(x, training=training), rtol=1e-5, atol=1e-5
        )


def test_memory_efficient_model_has_the_same_gradients():
    standard, efficient = _twins()
    x, y = _batch()
    loss = keras.losses.BinaryCrossentropy(from_logits=True)
    gradients = []
    for model in (standard, efficient):
        with tf.GradientTape() as tape:
            value = loss(y, model(x, training=True))
        gradients.append(tape.gradient(value, model.trainable_weights))
    for expected, actual in zip(*gradients, strict=True):
        np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-6)


def test_memory_efficient_training_step_matches_and_updates_bn_once():
    """One compiled train step (graph mode, as model.fit runs it) gives identical weights."""
    standard, efficient = _twins()
    x, y = _batch()
    for model in (standard, efficient):
        model.compile(keras.optimizers.SGD(0.1), keras.losses.BinaryCrossentropy(from_logits=True))
        model.train_on_batch(x, y)
    before = densenet.build_densenet(**TINY)
    moved = 0
    for name in ("conv2_block2_0_bn", "conv3_block3_0_bn"):  # inside the recomputed part
        expected = standard.get_layer(name).moving_mean.numpy()
        actual = _nested_layer(efficient, name).moving_mean.numpy()
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)
        moved += np.any(expected != before.get_layer(name).moving_mean.numpy())
    assert moved == 2
    for expected, actual in zip(standard.get_weights(), efficient.get_weights(), strict=True):
        np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5)


def _nested_layer(model, name):
    for layer in model.layers:
        if isinstance(layer, Recomputed):
            for inner in layer.inner.layers:
                if inner.name == name:
                    return inner
    return model.get_layer(name)


def test_memory_efficient_model_saves_and_loads(tmp_path):
    _, efficient = _twins()
    path = tmp_path / "efficient.keras"
    efficient.save(path)
    loaded = keras.models.load_model(path)
    x, _ = _batch()
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), efficient.predict(x, verbose=0), rtol=1e-6, atol=1e-6
    )
