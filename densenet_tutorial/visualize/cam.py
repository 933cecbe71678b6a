"""Grad-CAM and Grad-CAM++: where in the image the class score comes from.

Grad-CAM (Selvaraju et al., ICCV 2017, Eq. 1-2): with ``A`` the feature maps of a conv layer
and ``y`` the class score *before* the sigmoid/softmax,

    alpha_k = mean over positions (i, j) of dy / dA_k[i, j]
    L = ReLU(sum_k alpha_k A_k)

upsampled to the image and scaled to [0, 1]. For this project's one-logit head the "dog"
score is the logit and the "cat" score its negative. Grad-CAM++ (Chattopadhay et al.,
WACV 2018) weights each position's gradient instead of averaging them.

Both work on any functional Keras model: the layer is found by name, images go through in
batches, and gradients are always taken in float32 (a mixed-precision model is first copied
to float32), so a bfloat16 gradient can neither underflow nor lose its precision.
"""

import keras
import numpy as np
import tensorflow as tf
from scipy.special import expit

from densenet_tutorial.data.layouts import CLASS_NAMES  # ("cat", "dog"): labels 0 and 1
from densenet_tutorial.errors import SettingError


def grad_cam(
    model, images, layer_name="relu", target=None, batch_size=16, label_names=CLASS_NAMES, size=None
):
    """Grad-CAM heatmaps, float32 (N, H, W) in [0, 1] at the images' resolution.

    ``target``: None for each image's predicted class; a class index or name (for a
    one-logit head 1/"dog" uses +logit and 0/"cat" -logit); or one such target per image.
    ``size``: (height, width) of the maps if not the images' (the layer's own size gives the
    maps before upsampling). A map whose gradient vanishes (or whose weighted sum is negative
    everywhere) is all zeros.
    """
    features, gradients, _ = activations_and_gradients(
        model, images, layer_name, target, batch_size, label_names
    )
    alpha = gradients.mean(axis=(1, 2), keepdims=True)  # Eq. 1: global average of the gradients
    return to_heatmaps(np.sum(alpha * features, axis=-1), size or np.shape(images)[1:3])


def grad_cam_plus_plus(
    model, images, layer_name="relu", target=None, batch_size=16, label_names=CLASS_NAMES, size=None
):
    """Grad-CAM++ heatmaps (Chattopadhay et al. 2018, Eq. 19 with the score exp(y)).

    With g = dy/dA (y the logit as in ``grad_cam``), the closed form for an exponential score
    gives per-position weights alpha = g^2 / (2 g^2 + sum_ab A_ab g^3) and the channel weights
    w_k = sum_ij alpha_ij ReLU(exp(y) g_ij). The factor exp(y) is the same for every channel
    of an image, so it only scales the map and is left out (it would overflow for y > 88).
    Arguments and result as for ``grad_cam``.
    """
    features, gradients, _ = activations_and_gradients(
        model, images, layer_name, target, batch_size, label_names
    )
    g2, g3 = gradients**2, gradients**3
    denominator = 2 * g2 + features.sum(axis=(1, 2), keepdims=True) * g3
    alpha = np.divide(g2, denominator, out=np.zeros_like(g2), where=denominator != 0)
    weights = np.sum(alpha * np.maximum(gradients, 0), axis=(1, 2), keepdims=True)
    return to_heatmaps(np.sum(weights * features, axis=-1), size or np.shape(images)[1:3])


def activations_and_gradients(model, images, layer_name, target, batch_size, label_names):
    """The layer's activations A, the gradients dy/dA and the logits, float32 numpy arrays.

    y is the score of ``target`` (see ``grad_cam``) for each image.
    """
    model = model if computes_in_float32(model) else copy_in_float32(model)
    layer = get_layer(model, layer_name)
    if len(model.outputs) != 1:
        raise SettingError(f"{model.name} has {len(model.outputs)} outputs; Grad-CAM needs one.")
    probe = keras.Model(model.input, [layer.output, model.outputs[0]])
    results = []
    for start in range(0, len(images), batch_size):
        batch = tf.convert_to_tensor(np.asarray(images[start : start + batch_size]), tf.float32)
        with tf.GradientTape() as tape:
            features, logits = probe(batch, training=False)
            batch_target = target if np.ndim(target) == 0 else target[start : start + batch_size]
            classes = target_classes(logits.numpy(), batch_target, label_names)
            score = class_score(logits, classes)
        gradients = tape.gradient(score, features)
        if gradients is None:
            raise SettingError(
                f"The output of {model.name} does not depend on layer {layer_name!r}."
            )
        results.append((features.numpy(), gradients.numpy(), logits.numpy()))
    return tuple(np.concatenate(parts) for parts in zip(*results, strict=True))


def class_score(logits, classes):
    """The score before the sigmoid/softmax: one logit gives +logit (class 1) or -logit (0)."""
    if logits.shape[-1] == 1:
        return tf.where(classes == 1, 1.0, -1.0) * logits[:, 0]
    return tf.gather(logits, classes, axis=1, batch_dims=1)


def target_classes(logits, target, label_names=CLASS_NAMES):
    """Class index per image: the prediction (``target=None``), or the given index/name(s)."""
    if target is None:
        return predictions(logits)[0]
    num_classes = max(logits.shape[-1], 2)  # a single logit still separates two classes
    classes = []
    for t in np.broadcast_to(np.asarray(target, dtype=object), (len(logits),)):
        index = label_names.index(t) if t in label_names else t
        if not isinstance(index, (int, np.integer)) or not 0 <= index < num_classes:
            raise SettingError(
                f"target={t!r} is not a class: use None (the prediction), an index in "
                f"[0, {num_classes}) or one of {label_names}."
            )
        classes.append(int(index))
    return np.array(classes)


def predictions(logits):
    """Predicted class index and its probability: sigmoid for one logit, softmax otherwise."""
    logits = np.asarray(logits, dtype=np.float32)
    if logits.shape[-1] == 1:
        dog = expit(logits[:, 0])  # the sigmoid, without overflow for large logits
        probabilities = np.stack([1 - dog, dog], axis=-1)
    else:
        probabilities = keras.ops.convert_to_numpy(keras.ops.softmax(logits, axis=-1))
    classes = probabilities.argmax(axis=-1)
    return classes, probabilities[np.arange(len(classes)), classes]


def to_heatmaps(cams, size):
    """ReLU, bilinear upsampling to ``size`` and scaling each map to a maximum of 1.

    A map with no positive value stays all zeros: nothing is divided by zero, nothing is NaN.
    """
    cams = np.maximum(cams, 0)[..., None]
    cams = tf.image.resize(cams, size, method="bilinear").numpy()[..., 0]
    peak = cams.max(axis=(1, 2), keepdims=True)
    return np.divide(cams, peak, out=np.zeros_like(cams), where=peak > 0).astype(np.float32)


def computes_in_float32(model):
    """True unless some layer computes in another dtype (a mixed-precision policy)."""
    return all(layer.compute_dtype == "float32" for layer in model.layers)


def copy_in_float32(model):
    """A copy of ``model`` (same weights) whose layers all compute in float32."""

    def in_float32(layer):
        config = layer.get_config()
        if "dtype" in config:
            config["dtype"] = "float32"
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=in_float32)
    copy.set_weights(model.get_weights())
    return copy


SMALLEST_MAP = 7
"""The side of DenseNet-169's last maps at 224 px (Table 1: 7x7), the coarsest Grad-CAM map
``cam_layer`` accepts. On 64-px real photos (a quick network trained on 2,008 of Kaggle's
photos, 64 test photos) Grad-CAM's deletion score (``faithfulness``, lower is better) was
0.516 at ``relu`` (2x2), 0.506 at the end of the third block (4x4), 0.490 at the end of the
second (8x8), against 0.526 for random maps."""


def cam_layer(model, smallest=SMALLEST_MAP):
    """The layer Grad-CAM explains unless told: ``relu`` (the output of the last dense block,
    as Selvaraju et al. and the CAM paper take the last convolutional maps) where its maps are
    at least ``smallest`` pixels a side, else the deepest block output (``..._concat``) whose
    maps are. At 64 px the last block's maps are 2x2: a map that can only point at a quadrant.
    """
    for layer in reversed(model.layers):
        named = layer.name == "relu" or layer.name.endswith("_concat")
        if named and min(layer.output.shape[1:3]) >= smallest:
            return layer.name
    return "relu"


def get_layer(model, name):
    """``model.get_layer(name)`` with an error message that says what to do."""
    names = [layer.name for layer in model.layers]
    if name not in names:
        raise SettingError(
            f"{model.name} has no layer named {name!r}; pick one of model.summary(), "
            f"e.g. one of its last layers {names[-4:]}."
        )
    return model.get_layer(name)
