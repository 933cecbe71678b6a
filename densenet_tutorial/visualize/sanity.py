"""A sanity check for heatmaps (Adebayo et al., "Sanity Checks for Saliency Maps", 2018).

An explanation that does not change when the model's weights are destroyed explains
nothing about the model. The cascading randomisation test re-initialises the weights from
the top layer down, one step at a time, and compares each new heatmap with the original by
Spearman rank correlation: a faithful method's correlation falls as the weights go.
"""

import re

import keras
import matplotlib.pyplot as plt
import numpy as np
from scipy.stats import spearmanr

from densenet_tutorial.visualize.cam import CLASS_NAMES, copy_in_float32, grad_cam, target_classes
from densenet_tutorial.visualize.display import overlay


def randomization_steps(model):
    """Layers with trainable weights, grouped into steps from the output down.

    DenseNet layers are grouped by their name's stage (``conv{b}``: dense block b - 1 or
    the stem, ``pool{b}``: a transition); other layers (``bn``, ``predictions``) are steps
    of their own. Returns [(step name, [layer names])].
    """
    steps = {}
    for layer in reversed(model.layers):
        if layer.trainable_weights:
            stage = re.match(r"(conv|pool)\d+(?=_|$)", layer.name)
            steps.setdefault(stage[0] if stage else layer.name, []).append(layer.name)
    return list(steps.items())


def cascading_randomization(
    model, images, layer_name="relu", target=None, method=grad_cam, seed=None,
    label_names=CLASS_NAMES,
):  # fmt: skip
    """Heatmaps and their rank correlation with the original as the weights are randomised.

    Works on a copy (``model`` is not changed). Each step gives its layers the fresh
    initial weights of a newly built copy of the model, keeping the steps above it random
    too; a ``seed`` makes them reproducible (``keras.utils.set_random_seed``; use another seed
    than the one the model was built with, or an untrained model gets its own weights back).
    The target class of each image is fixed to the original model's choice. A constant map
    (e.g. all zeros) has no ranking and counts as correlation 0. Returns {"steps": [names],
    "correlation": (S + 1, N), "heatmaps": (S + 1, N, H, W)}, step 0 being the original model.
    """
    working = copy_in_float32(model)
    if seed is not None:
        keras.utils.set_random_seed(seed)
    fresh = keras.models.clone_model(working)  # same architecture, new initial weights
    images = np.asarray(images, dtype=np.float32)
    logits = working.predict(images, verbose=0)
    classes = target_classes(logits, target, label_names)
    heatmaps = [method(working, images, layer_name, classes)]
    names = ["original"]
    for step, layer_names in randomization_steps(working):
        for name in layer_names:
            working.get_layer(name).set_weights(fresh.get_layer(name).get_weights())
        heatmaps.append(method(working, images, layer_name, classes))
        names.append(step)
    correlation = [
        [rank_correlation(a, b) for a, b in zip(heatmaps[0], h, strict=True)] for h in heatmaps
    ]
    return {"steps": names, "correlation": np.array(correlation), "heatmaps": np.stack(heatmaps)}


def rank_correlation(a, b):
    """Spearman rank correlation of two maps; 0 when either is constant (no ranking)."""
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return float(spearmanr(np.ravel(a), np.ravel(b)).statistic)


def plot_randomization(result, image):
    """The heatmap of ``image`` (the first one checked) at each step, and the mean rank
    correlation with the original (shaded: min to max over the images). Returns the figure.
    """
    steps, correlation = result["steps"], result["correlation"]
    figure = plt.figure(figsize=(1.4 * len(steps), 4.6), layout="constrained")
    top, bottom = figure.subfigures(2, 1, height_ratios=(1, 1.6))
    for axes, step, heatmap in zip(
        top.subplots(1, len(steps)), steps, result["heatmaps"][:, 0], strict=True
    ):
        axes.imshow(overlay(image, heatmap))
        axes.set_title(step, fontsize=8)
        axes.axis("off")
    axes = bottom.subplots()
    x = np.arange(len(steps))
    axes.plot(x, correlation.mean(axis=1), marker="o")
    axes.fill_between(x, correlation.min(axis=1), correlation.max(axis=1), alpha=0.2)
    axes.set_xticks(x, steps, rotation=45, ha="right", fontsize=8)
    axes.set_ylim(-1.05, 1.05)
    axes.axhline(0, color="grey", linewidth=0.5)
    axes.set_xlabel("weights re-initialised down to (cascading, from the output)")
    axes.set_ylabel("Spearman rank correlation\nwith the original heatmap")
    return figure
