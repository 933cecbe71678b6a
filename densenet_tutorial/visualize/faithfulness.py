"""Grad-CAM measured, not only looked at: does the heatmap point at what the model uses?

- ``deletion_insertion`` (Petsiuk et al. 2018, RISE, Sec. 4.1): remove the pixels a heatmap
  ranks highest first and watch the class probability fall: a faithful map makes it fall
  fast, a low area under the curve. Insert them first into a blurred copy of the image and
  watch it rise: a high area. A removed pixel takes the value 0 of the *normalised* input, as
  in RISE's code: the ImageNet mean colour for a network that standardises its input with the
  ImageNet statistics, as ours and keras.applications' do (``MEAN_COLOUR``), not black;
  ``curves`` gives the two curves of one image;
- ``energy_inside``: the share of the heatmap's mass inside the object's mask (Score-CAM's
  "energy-based pointing game", Wang et al. 2020), where the mask is known (generated images);
- ``pointing_game``: whether the heatmap's maximum lies on the object (Zhang et al. 2016,
  "Top-down neural attention by Excitation Backprop");
- ``random_maps`` and ``centred_gaussians``: the baselines a heatmap must beat.
"""

import cv2
import numpy as np
from scipy.special import expit

from densenet_tutorial.visualize.cam import class_score, target_classes

MEAN_COLOUR = (123.675, 116.28, 103.53)  # 255 x the ImageNet mean: 0 after normalisation


def area_under_curve(scores):
    """The trapezoidal area under ``scores`` taken at equally spaced fractions from 0 to 1."""
    scores = np.asarray(scores, dtype=np.float64)
    return float((scores[:-1] + scores[1:]).sum() / 2 / (len(scores) - 1))


def deletion_insertion(model, images, heatmaps, target=None, steps=16, substrate=MEAN_COLOUR):
    """Per-image deletion and insertion AUCs of ``heatmaps`` (N, H, W) for ``model``.

    The score is the probability of ``target`` (None: the class predicted for each original
    image; for a one-logit model the sigmoid of +-logit). Deleted pixels take the colour
    ``substrate`` (RGB in [0, 255]). Returns ``{"deletion": (N,), "insertion": (N,)}``, each
    in [0, 1].
    """
    images = np.asarray(images, dtype=np.float32)
    classes = target_classes(model.predict(images, verbose=0), target)
    result = {"deletion": [], "insertion": []}
    for image, heatmap, label in zip(images, heatmaps, classes, strict=True):
        for kind, scores in curves(model, image, heatmap, label, steps, substrate).items():
            result[kind].append(area_under_curve(scores))
    return {kind: np.array(values) for kind, values in result.items()}


def curves(model, image, heatmap, label, steps=16, substrate=MEAN_COLOUR):
    """The probability of class ``label`` as ``steps`` equal shares of the pixels, the
    heatmap's highest first, are deleted from ``image`` (set to ``substrate``) and inserted
    into its blurred copy: ``{"deletion": (steps + 1,), "insertion": (steps + 1,)}``."""
    image = np.asarray(image, dtype=np.float32)
    order = np.argsort(-np.asarray(heatmap).ravel(), kind="stable")
    removed = np.broadcast_to(np.asarray(substrate, np.float32), image.shape)
    result = {}
    for kind, start, end in (("deletion", image, removed), ("insertion", blur(image), image)):
        series = [replaced(start, end, order, round(i * order.size / steps))
                  for i in range(steps + 1)]  # fmt: skip
        result[kind] = probability(model, np.stack(series), label)
    return result


def replaced(start, end, order, count):
    """``start`` with its ``count`` top-ranked pixels (by ``order``) taken from ``end``."""
    height, width = start.shape[:2]
    mixed = start.reshape(height * width, -1).copy()
    mixed[order[:count]] = end.reshape(height * width, -1)[order[:count]]
    return mixed.reshape(start.shape)


def blur(image):
    """The insertion canvas: a Gaussian blur whose width is a tenth of the image's side."""
    side = max(3, (min(image.shape[:2]) // 10) | 1)
    return cv2.GaussianBlur(image, (side, side), sigmaX=side / 2)


def probability(model, images, label):
    """The probability the model gives class ``label`` for each image."""
    logits = np.asarray(model.predict_on_batch(images))
    if logits.shape[-1] == 1:
        return expit(np.asarray(class_score(logits, np.full(len(images), label))))
    exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return (exp / exp.sum(axis=-1, keepdims=True))[:, label]


def energy_inside(heatmaps, masks):
    """The share of each heatmap's mass inside the object's mask (0 for an empty map)."""
    heatmaps = np.asarray(heatmaps, dtype=np.float64)
    inside = (heatmaps * (np.asarray(masks) > 0)).sum(axis=(1, 2))
    total = heatmaps.sum(axis=(1, 2))
    return np.divide(inside, total, out=np.zeros_like(total), where=total > 0)


def pointing_game(heatmaps, masks):
    """True where a heatmap's maximum lies inside the object's mask."""
    heatmaps, masks = np.asarray(heatmaps), np.asarray(masks) > 0
    peaks = heatmaps.reshape(len(heatmaps), -1).argmax(axis=1)
    return masks.reshape(len(masks), -1)[np.arange(len(masks)), peaks]


def random_maps(count, height, width, seed=0):
    """Baseline: uniform random heatmaps."""
    return np.random.default_rng(seed).uniform(size=(count, height, width)).astype(np.float32)


def centred_gaussians(count, height, width, sigma=0.25):
    """Baseline: a Gaussian centred on the image, ``sigma`` a fraction of each side."""
    rows = (np.arange(height) - (height - 1) / 2) / (sigma * height)
    columns = (np.arange(width) - (width - 1) / 2) / (sigma * width)
    gaussian = np.exp(-0.5 * (rows[:, None] ** 2 + columns[None, :] ** 2))
    return np.repeat(gaussian[None].astype(np.float32), count, axis=0)


def faithfulness_table(model, images, masks=None, layer_name=None, steps=16, seed=0):
    """Grad-CAM, Grad-CAM++ and both baselines, for the class predicted for each image.

    ``{method: {"deletion": (mean, std), "insertion": ..., "energy inside": ...,
    "pointing game": ...}}``; the last two only where the objects' ``masks`` are known.
    Grad-CAM's layer: ``layer_name``, or None for ``cam.cam_layer(model)``.
    """
    from densenet_tutorial.visualize.cam import cam_layer, grad_cam, grad_cam_plus_plus

    layer_name = layer_name or cam_layer(model)
    count, height, width = np.shape(images)[:3]
    maps = {
        "Grad-CAM": grad_cam(model, images, layer_name),
        "Grad-CAM++": grad_cam_plus_plus(model, images, layer_name),
        "random map": random_maps(count, height, width, seed),
        "centred Gaussian": centred_gaussians(count, height, width),
    }
    table = {}
    for name, heatmaps in maps.items():
        scores = deletion_insertion(model, images, heatmaps, steps=steps)
        if masks is not None:
            scores["energy inside"] = energy_inside(heatmaps, masks)
            scores["pointing game"] = pointing_game(heatmaps, masks).astype(float)
        table[name] = {kind: (float(v.mean()), float(v.std())) for kind, v in scores.items()}
    return table
