"""The ImageNet weights of ``keras.applications.DenseNet169``, in the network built from scratch.

Our DenseNet-169 (``model.densenet169``) has keras.applications' layer names and weight
shapes, so Keras's official ImageNet weights load into it layer by layer, by name: the
strongest check that the hand-built network is the real one, and the start of fine-tuning
(notebook 06). Keras downloads the weights once, into its own cache (``~/.keras/models``).
"""

from pathlib import Path

import keras

from densenet_tutorial.errors import MissingInputError, SettingError

IMAGENET_CLASSES = 1000


def load_imagenet_weights(model, weights="imagenet"):
    """Copy keras.applications' DenseNet-169 weights into ``model``, a ``build_densenet`` model.

    ``weights`` is ``"imagenet"`` (downloaded once through Keras's cache) or the path of a
    weights file of ``keras.applications.DenseNet169``. Every layer with weights from
    ``conv1_conv`` to ``bn`` is copied; the classifier (``predictions``) too if ``model`` has
    1,000 classes (keras.applications ends in a softmax, ours in the logits before it: the
    same weights). Otherwise the head stays as built. Raises ``SettingError`` naming the
    first layer that differs (another k, other blocks), ``MissingInputError`` when Keras cannot
    download the weights. Returns the names of the copied layers.
    """
    with_top = model.get_layer("predictions").units == IMAGENET_CLASSES
    shape = (224, 224, 3) if with_top else model.input_shape[1:]
    try:
        source = keras.applications.DenseNet169(weights=weights, include_top=with_top,
                                                input_shape=shape)  # fmt: skip
    except Exception as error:
        if weights != "imagenet" or type(error) is not Exception:
            raise
        # keras.utils.get_file raises a bare Exception when the download fails
        raise MissingInputError(
            f"Keras could not download the ImageNet weights of DenseNet-169 (about 57 MB, once): "
            f"{error}"
        ) from error
    copied = []
    for layer in source.layers:
        if not layer.weights:
            continue
        check_layer_matches(model, layer)
        model.get_layer(layer.name).set_weights(layer.get_weights())
        copied.append(layer.name)
    return copied


def check_layer_matches(model, source_layer):
    """Raise ``SettingError`` unless ``model`` has ``source_layer``'s name and weight shapes."""
    names = {layer.name for layer in model.layers}
    if source_layer.name not in names:
        raise SettingError(
            f"{model.name} has no layer {source_layer.name!r}: the ImageNet weights are those of "
            f"DenseNet-169 (blocks 6, 12, 32, 32, k = 32); build it with model.densenet169()."
        )
    expected = [tuple(w.shape) for w in source_layer.weights]
    found = [tuple(w.shape) for w in model.get_layer(source_layer.name).weights]
    if found != expected:
        raise SettingError(
            f"Layer {source_layer.name!r} of {model.name} has weights of shapes {found}, the "
            f"ImageNet DenseNet-169 {expected}: another growth rate or block size? The weights "
            f"fit model.densenet169() (k = 32, compression 0.5) only."
        )


def random_weights_file(path, with_top=False, input_shape=(224, 224, 3), seed=0):
    """Save the weights of a randomly initialised keras.applications DenseNet-169 to ``path``.

    A stand-in for the ImageNet weights where they cannot be downloaded (tests, quick mode,
    offline): the same layers and shapes, random values, batch-norm statistics included so
    that batch normalization is not the identity. Numbers computed with it mean nothing.
    """
    import numpy as np

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(seed)
    reference = keras.applications.DenseNet169(weights=None, include_top=with_top,
                                               input_shape=input_shape)  # fmt: skip
    rng = np.random.default_rng(seed)
    for layer in reference.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights([gamma, beta, rng.normal(0, 0.1, mean.shape),
                               rng.uniform(0.5, 1.5, variance.shape)])  # fmt: skip
    reference.save_weights(path)
    return path


def doubtful_photos(split_dir, weights="imagenet", image_size=224, limit=None,
                    parts=("val", "test")):  # fmt: skip
    """The photos of ``parts`` of a split that DenseNet-169 with ``weights`` (ImageNet's, or a
    weights file of ``keras.applications.DenseNet169`` with its classifier) finds doubtful
    (``data.doubtful.find_doubtful``), and how many photos it looked at (the first ``limit``).
    Raises ``MissingInputError`` when the ImageNet weights cannot be downloaded.

    The network built from scratch, ``model.densenet169(num_classes=1000)``, with those
    weights copied in (``load_imagenet_weights``), at ``image_size`` pixels.
    """
    from densenet_tutorial.data.doubtful import find_doubtful
    from densenet_tutorial.data.split import read_split
    from densenet_tutorial.model import densenet169

    rows = []
    for part in parts:
        root, part_rows = read_split(split_dir, part)
        rows += part_rows
    rows = rows[:limit]
    network = densenet169(input_shape=(image_size, image_size, 3), num_classes=IMAGENET_CLASSES)
    load_imagenet_weights(network, weights)
    return find_doubtful(network, root, rows, image_size=image_size), len(rows)
