"""The training augmentation against independent references: tf.image, and its own promises.

The crop, resize and mirror are checked against ``tf.image.resize`` and a NumPy flip, the
colour changes against ``tf.image.adjust_contrast`` and ``tf.image.rgb_to_grayscale``; the
draws for their ranges, independence and reproducibility from (seed, step, replica), with
and without XLA, and on two replicas of a ``MirroredStrategy``.
"""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from densenet_tutorial.data import augment
from densenet_tutorial.data.augment import augmentation

RNG = np.random.default_rng(0)
IMAGES = RNG.uniform(0, 255, (4, 24, 30, 3)).astype("float32")


def full_box(mirror):
    ones, zeros = tf.ones([len(mirror)]), tf.zeros([len(mirror)])
    return {
        "top": zeros,
        "left": zeros,
        "height": ones,
        "width": ones,
        "mirror": tf.constant(mirror),
    }


def test_the_whole_photo_comes_back_unchanged_or_mirrored():
    out = augment.crop_resize_mirror(tf.constant(IMAGES), full_box([False, True, False, True]))
    np.testing.assert_allclose(out[0], IMAGES[0], atol=1e-3)
    np.testing.assert_allclose(out[1], IMAGES[1][:, ::-1], atol=1e-3)


def test_a_crop_is_the_cropped_pixels_resized_by_tf_image():
    """Rows 6-18 of 24 and columns 5-20 of 30, resized back: ``tf.image.resize`` (bilinear,
    pixel centres) of exactly those pixels. At the border we read the photo's neighbouring
    pixels where ``tf.image.resize`` repeats the crop's edge, so the border is left out."""
    n = len(IMAGES)
    box = {"top": tf.fill([n], 6 / 24), "left": tf.fill([n], 5 / 30), "height": tf.fill([n], 0.5),
           "width": tf.fill([n], 0.5), "mirror": tf.constant([False, True] * (n // 2))}  # fmt: skip
    out = augment.crop_resize_mirror(tf.constant(IMAGES), box).numpy()
    reference = tf.image.resize(IMAGES[:, 6:18, 5:20], (24, 30)).numpy()
    reference[1::2] = reference[1::2, :, ::-1]
    np.testing.assert_allclose(out[:, 1:-1, 1:-1], reference[:, 1:-1, 1:-1], atol=1e-3)


def test_colour_changes_are_those_of_tf_image():
    images = RNG.uniform(60, 190, (2, 8, 8, 3)).astype("float32")  # no clipping at 0.8-1.2
    one = tf.ones([2])
    contrast = augment.jitter_colour(images, one, tf.fill([2], 0.8), one)
    np.testing.assert_allclose(contrast, tf.image.adjust_contrast(images, 0.8), atol=1e-3)
    brighter = augment.jitter_colour(images, tf.fill([2], 1.2), one, one)
    np.testing.assert_allclose(brighter, np.clip(images * 1.2, 0, 255), atol=1e-3)
    grey = augment.jitter_colour(images, one, one, tf.zeros([2]))  # saturation 0: grey
    expected = np.repeat(tf.image.rgb_to_grayscale(images).numpy(), 3, axis=-1)
    np.testing.assert_allclose(grey, expected, atol=1e-3)


def draws(seed=0, step=0, replica=0, images=2000):
    drawn = augment.draw(augment.random_key(seed, step, replica), images)
    return {name: np.asarray(value, np.float64) for name, value in drawn.items()}


def test_draws_are_in_range_independent_and_reproducible():
    d = draws()
    area, ratio = d["height"] * d["width"], d["width"] / d["height"]
    assert (area >= 0.25 - 1e-6).all() and (area <= 1 + 1e-6).all()
    inside = (d["height"] < 1) & (d["width"] < 1)  # not clipped to a side of the photo
    assert (ratio[inside] >= 3 / 4 - 1e-5).all() and (ratio[inside] <= 4 / 3 + 1e-5).all()
    assert (d["top"] + d["height"] <= 1 + 1e-6).all() and (d["left"] + d["width"] <= 1 + 1e-6).all()
    for name in ("brightness", "contrast", "saturation"):
        assert d[name].min() >= 0.8 and d[name].max() <= 1.2, name
    assert 0.45 < d["mirror"].mean() < 0.55
    # Each quantity from its own key: the uniform numbers behind them are uncorrelated.
    free = inside & (d["height"] < 0.99) & (d["width"] < 0.99)
    numbers = {
        "vertical position": d["top"][free] / (1 - d["height"][free]),
        "horizontal position": d["left"][free] / (1 - d["width"][free]),
        **{name: d[name][free] for name in ("mirror", "brightness", "contrast", "saturation")},
    }
    correlations = np.corrcoef(list(numbers.values()))
    assert np.abs(correlations[~np.eye(len(numbers), dtype=bool)]).max() < 0.1, correlations
    assert all(np.array_equal(d[name], draws()[name]) for name in d)  # the same key: the same
    for other in (draws(seed=1), draws(step=1), draws(replica=1)):
        assert not np.array_equal(d["top"], other["top"])  # any other key: other draws


def test_every_image_of_a_batch_gets_its_own_draw_and_a_step_its_own():
    images = np.repeat(IMAGES[:1], 16, axis=0)
    layer = augmentation(seed=5)
    out = layer(images, step=7).numpy()
    distinct = {out[i].tobytes() for i in range(16)}
    assert len(distinct) == 16
    np.testing.assert_array_equal(layer(images, step=7), out)  # a pure function of the step
    assert not np.allclose(layer(images, step=8), out)


def test_the_same_step_draws_the_same_with_and_without_xla():
    """XLA and TensorFlow's kernels draw different random floats from one key; the draws are
    built from random integers, which both draw alike, so a step augments the same either way."""
    layer = augmentation(seed=3)
    compiled = tf.function(lambda x, s: layer(x, step=s), jit_compile=True)
    step = tf.constant(11, tf.int64)
    np.testing.assert_allclose(compiled(IMAGES, step), layer(IMAGES, step=step), atol=0.01)


def test_augmentation_computes_in_float32_under_mixed_precision():
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        images = RNG.integers(0, 256, (4, 16, 16, 3)).astype("uint8")
        augmented = augmentation(seed=0)(images, step=0)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert augmented.dtype == tf.float32
    assert not np.allclose(np.asarray(augmented), images)
    assert float(tf.reduce_min(augmented)) >= 0 and float(tf.reduce_max(augmented)) <= 255


REPLICAS = textwrap.dedent(
    """
    import json
    import numpy as np
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from densenet_tutorial.data.augment import augmentation

    layer = augmentation(seed=2)
    images = np.random.default_rng(0).uniform(0, 255, (4, 16, 16, 3)).astype("float32")
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    per_replica = strategy.run(tf.function(lambda: layer(images, step=3)))
    first, second = (np.asarray(t) for t in strategy.experimental_local_results(per_replica))
    alone = np.asarray(layer(images, step=3))  # one device: replica 0
    print(json.dumps({"replicas_differ": float(np.abs(first - second).max()),
                      "replica_0_vs_alone": float(np.abs(first - alone).max())}))
    """
)


def test_two_replicas_draw_differently_and_replica_0_as_one_device():
    """Two logical CPUs under MirroredStrategy stand in for two GPUs: the same replica ids and
    per-replica draws, but TensorFlow's CPU kernels and no XLA, where GPUs would compile it."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(
        [sys.executable, "-c", REPLICAS], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["replicas_differ"] > 1.0
    assert result["replica_0_vs_alone"] < 0.01


@pytest.mark.parametrize("seed", [None, 7])
def test_augmentation_keeps_its_seed_through_saving(seed):
    layer = augmentation(seed)
    again = augment.Augmentation.from_config(layer.get_config())
    assert again.seed == layer.seed and isinstance(layer.seed, int)
    np.testing.assert_array_equal(again(IMAGES, step=2), layer(IMAGES, step=2))
