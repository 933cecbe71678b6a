"""Doubtful photos: a classifier of many classes points at photos it does not see as labelled.

The classifier here is a hand-made Keras model whose answer is known: the mean red, blue and
green of a photo are the logits of its classes 0 ("a cat"), 1 ("a dog") and 2 (neither), and
class 3 is never chosen. It stands in for DenseNet-169 with ImageNet's 1,000 classes, which
notebook 01 uses; what is tested is the rule, the reading of photos and the report.
"""

import os
import subprocess
import sys
from pathlib import Path

import cv2
import keras
import numpy as np
import pytest

from densenet_tutorial.data.doubtful import (
    IMAGENET_CLASSES,
    class_probabilities,
    find_doubtful,
    judge,
    plot_doubtful,
)

REPOSITORY = Path(__file__).resolve().parents[1]
CLASSES = {"cat": (0,), "dog": (1,)}
BGR = {"red": (0, 0, 255), "blue": (255, 0, 0), "green": (0, 255, 0)}


def colour_classifier(size=16):
    """Logits: 0.1 x the mean red, blue and green (RGB input in [0, 255]), and 0."""
    inputs = keras.Input((size, size, 3))
    means = keras.layers.GlobalAveragePooling2D()(inputs)
    dense = keras.layers.Dense(4, use_bias=False, name="logits")
    model = keras.Model(inputs, dense(means))
    weights = np.zeros((3, 4), np.float32)
    weights[0, 0] = weights[2, 1] = weights[1, 2] = 0.1  # R -> 0, B -> 1, G -> 2
    dense.set_weights([weights])
    return model


@pytest.fixture
def photos(tmp_path):
    files = [("cats/red.jpg", "cat"), ("cats/blue.jpg", "cat"), ("dogs/blue.jpg", "dog"),
             ("dogs/green.jpg", "dog"), ("dogs/red.jpg", "dog")]  # fmt: skip
    for path, _ in files:
        (tmp_path / path).parent.mkdir(exist_ok=True)
        colour = BGR[path.split("/")[1].removesuffix(".jpg")]
        cv2.imwrite(str(tmp_path / path), np.full((30, 40, 3), colour, np.uint8))
    return tmp_path, files


def test_photos_of_the_other_class_or_of_neither_are_pointed_at(photos):
    root, files = photos
    found = find_doubtful(colour_classifier(), root, files, classes=CLASSES, top=1)
    assert [(row["path"], row["reason"]) for row in found] == [
        ("cats/blue.jpg", "100% sure it is a dog"),
        ("dogs/green.jpg", "no cat or dog in the top 1"),
        ("dogs/red.jpg", "100% sure it is a cat"),
    ]
    green = found[1]
    assert green["label"] == "dog" and green["top"][0][0] == 2 and green["top"][0][1] > 0.99
    assert green["p_cat"] < 0.01 and green["p_dog"] < 0.01


def test_probabilities_or_logits_and_a_preprocessing_step(photos):
    root, files = photos
    softmax = keras.Sequential([colour_classifier(), keras.layers.Softmax()])
    as_logits = find_doubtful(colour_classifier(), root, files, classes=CLASSES, top=1)
    as_probabilities = find_doubtful(softmax, root, files, classes=CLASSES, top=1)
    assert [row["path"] for row in as_probabilities] == [row["path"] for row in as_logits]
    # A preprocessing that swaps red and blue turns every verdict on cats and dogs around.
    swapped = find_doubtful(colour_classifier(), root, files, classes=CLASSES, top=1,
                            preprocess=lambda batch: batch[..., ::-1])  # fmt: skip
    assert [row["path"] for row in swapped] == ["cats/red.jpg", "dogs/blue.jpg", "dogs/green.jpg"]


def test_the_rule_on_imagenet_classes():
    rows = np.zeros((4, 1000))
    rows[0, [281, 500]] = 0.95, 0.05  # a tabby, labelled cat: fine
    rows[1, [151, 200, 268, 500]] = 0.31, 0.31, 0.31, 0.07  # three dog breeds, labelled cat
    rows[2, [281, 500, 600]] = 0.02, 0.9, 0.08  # a cat third, labelled cat: in the top 5
    rows[3, 600:605] = 0.2  # five classes that are neither, labelled dog
    reasons = judge(class_probabilities(rows), ["cat", "cat", "cat", "dog"])
    assert reasons == ["", "93% sure it is a dog", "", "no cat or dog in the top 5"]
    assert len(IMAGENET_CLASSES["dog"]) == 118 and len(IMAGENET_CLASSES["cat"]) == 5


def test_logits_are_told_from_probabilities():
    logits = np.array([[2.0, -1.0, 0.5]])
    np.testing.assert_allclose(class_probabilities(logits), keras.ops.softmax(logits), rtol=1e-6)
    probabilities = np.array([[0.7, 0.2, 0.1]])
    np.testing.assert_array_equal(class_probabilities(probabilities), probabilities)


def test_the_gallery_names_each_photo_and_why(photos):
    import matplotlib

    matplotlib.use("Agg")
    root, files = photos
    found = find_doubtful(colour_classifier(), root, files, classes=CLASSES, top=1)
    figure = plot_doubtful(found, root, names=["a cat", "a dog", "grass", "none"], columns=2)
    titles = [ax.get_title() for ax in figure.axes if ax.images]
    assert titles == [
        "blue.jpg (cat)\n100% sure it is a dog\ntop: a dog 100%",
        "green.jpg (dog)\nno cat or dog in the top 1\ntop: grass 100%",
        "red.jpg (dog)\n100% sure it is a cat\ntop: a cat 100%",
    ]
    assert len(figure.axes) == 4 and plot_doubtful([], root) is None


NO_NETWORK = """
import sys
from densenet_tutorial.errors import MissingInputError
from densenet_tutorial.pretrained import doubtful_photos

try:
    doubtful_photos(sys.argv[1], "imagenet", image_size=32, limit=2)
except MissingInputError as error:
    print(f"error: {error}")
"""


def test_no_network_for_the_imagenet_weights_is_one_clear_error(synthetic_split, tmp_path):
    """Keras downloads the weights into its cache; with an empty cache and no network (a proxy
    that refuses connections), notebook 01 says so in one line and goes on without a gallery.

    Keras reads its cache folder from ``KERAS_HOME`` when it is imported, so the check runs in
    a new process whose environment names an empty folder."""
    environment = {**os.environ, "KERAS_HOME": str(tmp_path / "keras")}
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        environment[name] = "http://127.0.0.1:9"  # the discard port: nothing listens
    for name in ("NO_PROXY", "no_proxy"):
        environment.pop(name, None)
    environment["PYTHONPATH"] = os.pathsep.join([str(REPOSITORY), *sys.path])
    done = subprocess.run([sys.executable, "-c", NO_NETWORK, str(synthetic_split)],
                          env=environment, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    line = done.stdout.strip().splitlines()[-1]
    assert line.startswith("error:") and "could not download the ImageNet weights" in line
    assert (tmp_path / "keras" / "models").is_dir()  # the download went to the empty cache
