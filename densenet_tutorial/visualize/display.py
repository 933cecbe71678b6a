"""Heatmaps drawn on images, and a gallery of right and wrong predictions."""

import cv2
import matplotlib.pyplot as plt
import numpy as np

from densenet_tutorial.visualize.cam import CLASS_NAMES, predictions


def overlay(image, heatmap, alpha=0.4, colormap=cv2.COLORMAP_JET):
    """Blend a [0, 1] heatmap, coloured with an OpenCV colormap, onto an RGB image.

    OpenCV colormaps return BGR; the colours are turned into RGB before blending, so red
    (JET's top) marks the hot regions. The heatmap is resized to the image if needed.
    Returns a uint8 RGB image.
    """
    image = np.clip(np.asarray(image, dtype=np.float32), 0, 255)
    heatmap = np.asarray(heatmap, dtype=np.float32)
    if heatmap.shape != image.shape[:2]:
        heatmap = cv2.resize(heatmap, image.shape[1::-1], interpolation=cv2.INTER_LINEAR)
    levels = np.uint8(np.round(255 * np.clip(heatmap, 0, 1)))
    colours = cv2.cvtColor(cv2.applyColorMap(levels, colormap), cv2.COLOR_BGR2RGB)
    return np.uint8(np.round((1 - alpha) * image + alpha * colours))


def plot_gallery(
    images, labels, logits, heatmaps=None, label_names=CLASS_NAMES, per_side=6, columns=3
):
    """Correct predictions on the left, wrong ones on the right.

    Each image is titled with its true label, the predicted label and that prediction's
    probability; with ``heatmaps`` (e.g. from ``grad_cam``) they are drawn on the images.
    Shows up to ``per_side`` images of each kind. Returns the matplotlib figure.
    """
    predicted, probability = predictions(logits)
    labels = np.asarray(labels)
    sides = {"correct": np.flatnonzero(predicted == labels)[:per_side]}
    sides["wrong"] = np.flatnonzero(predicted != labels)[:per_side]
    rows = max(1, -(-max(len(v) for v in sides.values()) // columns))
    figure = plt.figure(figsize=(2 * 2.2 * columns, 2.4 * rows + 0.5), layout="constrained")
    for panel, (side, indices) in zip(figure.subfigures(1, 2), sides.items(), strict=True):
        panel.suptitle(f"{side} ({len(indices)} shown)")
        for axes in np.ravel(panel.subplots(rows, columns, squeeze=False)):
            axes.axis("off")
        for axes, i in zip(panel.axes, indices, strict=False):
            shown = images[i] if heatmaps is None else overlay(images[i], heatmaps[i])
            axes.imshow(np.uint8(np.clip(shown, 0, 255)))
            axes.set_title(
                f"true {label_names[labels[i]]}\npred {label_names[predicted[i]]} "
                f"{probability[i]:.2f}",
                fontsize=8,
                color="green" if side == "correct" else "red",
            )
    return figure


def plot_photo(result, alpha=0.4):
    """The photo, then the Grad-CAM of each class drawn on it (``explain_photo``'s result)."""
    import matplotlib.pyplot as plt

    names = list(result["heatmaps"])
    fig, axes = plt.subplots(1, 1 + len(names), figsize=(4 * (1 + len(names)), 4.2))
    axes[0].imshow(result["image"])
    axes[0].set_title(f"{result['predicted']} ({result['probability']:.2f})")
    for ax, name in zip(axes[1:], names, strict=True):
        ax.imshow(overlay(result["image"], result["heatmaps"][name], alpha))
        ax.set_title(f"Grad-CAM of {name!r}")
    for ax in axes:
        ax.axis("off")
    return fig
