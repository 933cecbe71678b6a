"""The ImageNet weights of keras.applications' DenseNet-169, loaded into our network.

No download is possible here: a weights file of ``keras.applications.DenseNet169(weights=None)``
with random values (batch-norm statistics included) stands in for the ImageNet one; the
loading code is the same.
"""

import keras
import numpy as np
import pytest

from densenet_tutorial.errors import SettingError
from densenet_tutorial.model import build_densenet, densenet169
from densenet_tutorial.pretrained import load_imagenet_weights, random_weights_file

SIZE = 64


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "densenet169_notop.weights.h5"
    return random_weights_file(path, input_shape=(SIZE, SIZE, 3))


def test_our_network_with_the_weights_computes_what_keras_applications_computes(weights_file):
    reference = keras.applications.DenseNet169(weights=weights_file, include_top=False,
                                               input_shape=(SIZE, SIZE, 3))  # fmt: skip
    ours = densenet169(input_shape=(SIZE, SIZE, 3))
    copied = load_imagenet_weights(ours, weights=weights_file)
    assert copied[0] == "conv1_conv" and copied[-1] == "bn" and "predictions" not in copied
    assert len(copied) == sum(1 for layer in reference.layers if layer.weights)
    pixels = np.random.default_rng(0).uniform(0, 255, (2, SIZE, SIZE, 3)).astype("float32")
    ours_at_relu = keras.Model(ours.input, ours.get_layer("relu").output)(pixels)
    theirs = reference(keras.applications.densenet.preprocess_input(pixels.copy()))
    np.testing.assert_allclose(ours_at_relu, theirs, atol=1e-5, rtol=1e-5)
    assert float(np.abs(theirs).max()) > 0.1  # the comparison is not between zeros


def test_a_1000_class_head_takes_the_imagenet_classifier_too(tmp_path):
    path = random_weights_file(tmp_path / "densenet169.weights.h5", with_top=True)
    reference = keras.applications.DenseNet169(weights=path, include_top=True)
    ours = densenet169(input_shape=(224, 224, 3), num_classes=1000)
    assert "predictions" in load_imagenet_weights(ours, weights=path)
    pixels = np.random.default_rng(1).uniform(0, 255, (1, 224, 224, 3)).astype("float32")
    probabilities = keras.ops.softmax(ours(pixels))  # ours gives logits, theirs the softmax
    np.testing.assert_allclose(
        probabilities,
        reference(keras.applications.densenet.preprocess_input(pixels.copy())),
        atol=1e-5,
    )


def test_another_growth_rate_is_refused_naming_the_first_layer_that_differs(weights_file):
    narrow = densenet169(growth_rate=12, input_shape=(SIZE, SIZE, 3))
    with pytest.raises(SettingError, match="Layer 'conv1_conv'.*another growth rate"):
        load_imagenet_weights(narrow, weights=weights_file)
    fewer = build_densenet(blocks=(6, 12, 24, 16), input_shape=(SIZE, SIZE, 3))
    with pytest.raises(SettingError, match="no layer 'conv4_block25_0_bn'"):
        load_imagenet_weights(fewer, weights=weights_file)
