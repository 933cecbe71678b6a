"""Evaluation of a trained run: the test split, once, with the best model; and the run's figures.

- ``evaluate``: accuracy (with its 95 % confidence interval), loss, AUC, precision, recall and
  the confusion matrix of a one-logit binary classifier on a dataset (``Model.evaluate`` with
  Keras metrics), and the logit of every image (``Model.predict``);
- ``top_losses``: the most confident mistakes of both kinds, where odd photos surface (a
  placeholder, a word, two animals), no pretrained network needed;
- ``plot_training_curves``, ``plot_confusion_matrix``, ``plot_misclassified``: the figures;
- ``evaluate_run``: all of it for a run folder, writing ``metrics.json`` and the figures.

"dog" (label 1) is the positive class of precision and recall; the confusion matrix has the
true classes as rows and the predicted classes as columns, in the order of ``CLASS_NAMES``.
"""

import json
import math

import keras
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from scipy.special import expit  # the sigmoid, without overflow for large logits
from scipy.stats import binomtest

from densenet_tutorial.data import CLASS_NAMES, make_dataset, read_split
from densenet_tutorial.data.files import DamagedFile, read_csv, write_atomically
from densenet_tutorial.errors import MissingInputError

MAX_MISTAKES = 16  # shown in misclassified.png: up to half of each kind
CONFIDENCE = 0.95  # of the accuracy's interval
COUNTS = ("true_negatives", "false_positives", "false_negatives", "true_positives")


def evaluation_metrics():
    """Keras metrics of a one-logit classifier (class 1 when the logit is > 0)."""
    m = keras.metrics
    return [
        m.BinaryAccuracy(threshold=0.0, name="accuracy"),
        m.AUC(from_logits=True, name="auc"),
        m.Precision(thresholds=0.0, name="precision"),
        m.Recall(thresholds=0.0, name="recall"),
        m.TrueNegatives(thresholds=0.0, name=COUNTS[0]),
        m.FalsePositives(thresholds=0.0, name=COUNTS[1]),
        m.FalseNegatives(thresholds=0.0, name=COUNTS[2]),
        m.TruePositives(thresholds=0.0, name=COUNTS[3]),
    ]


def evaluate(model, dataset, verbose=1):
    """Metrics of ``model`` (one logit) on ``dataset``, and its logit of every image in order.

    Returns ``(metrics, logits)``. The loss is plain binary cross-entropy (without the label
    smoothing used in training), so it compares across recipes. ``model`` is compiled anew
    for it (in the distribution strategy's scope, if any). ``accuracy_interval`` is the
    Wilson score interval (``scipy.stats.binomtest``) at ``CONFIDENCE``: where the accuracy
    on all such photos lies, given this many test images.
    """
    loss = keras.losses.BinaryCrossentropy(from_logits=True)
    # Without XLA: the test split is read once, and compiling DenseNet-169's steps for it on a GPU
    # (evaluate, then predict) costs more than the pass gains (an estimate; not measured).
    model.compile(loss=loss, metrics=evaluation_metrics(), jit_compile=False)
    results = model.evaluate(dataset, verbose=verbose, return_dict=True)
    logits = np.asarray(model.predict(dataset, verbose=0), np.float64).reshape(-1)
    tn, fp, fn, tp = (int(results[name]) for name in COUNTS)
    images, right = tn + fp + fn + tp, tn + tp
    interval = binomtest(right, images).proportion_ci(CONFIDENCE, method="wilson")
    metrics = {
        "images": images,
        "accuracy": right / images,
        "accuracy_interval": [float(interval.low), float(interval.high)],
        "confidence": CONFIDENCE,
        **{name: float(results[name]) for name in ("loss", "auc", "precision", "recall")},
        "confusion_matrix": [[tn, fp], [fn, tp]],
    }
    return metrics, logits


def top_losses(logits, labels, count=MAX_MISTAKES):
    """Indices of the most confident mistakes: cats taken for dogs, then dogs taken for cats,
    up to ``count // 2`` of each, most confident (largest loss) first.

    On a mistake the loss grows with the logit's size, so the largest ``|logit|`` first: the
    photos the network is surest of and wrong about, where a mislabelled or odd photo shows.
    """
    logits, labels = np.asarray(logits), np.asarray(labels)
    wrong = (logits > 0) != (labels == 1)
    found = []
    for label in (0, 1):
        mistakes = np.flatnonzero(wrong & (labels == label))
        found.extend(mistakes[np.argsort(-np.abs(logits[mistakes]), kind="stable")][: count // 2])
    return [int(i) for i in found]


def read_history(history_csv):
    """``history.csv`` as {column: array}; an epoch logged twice (a resumed run) keeps its last.
    ``files.DamagedFile`` if it is not the CSV that Keras's ``CSVLogger`` writes."""
    try:
        rows = {int(row["epoch"]): row for row in read_csv(history_csv)}
        epochs = sorted(rows)
        columns = rows[epochs[0]].keys() if epochs else []
        return {name: np.array([float(rows[e][name]) for e in epochs]) for name in columns}
    except (KeyError, ValueError) as error:
        raise DamagedFile(history_csv, f"a value that is not a number: {error}") from error


def plot_training_curves(history, path):
    """Loss (label-smoothed, as trained), accuracy and AUC per epoch: training and validation."""
    fig = Figure(figsize=(13, 3.8), layout="constrained")
    epochs = history["epoch"] + 1
    for ax, name in zip(fig.subplots(1, 3), ("loss", "accuracy", "auc"), strict=True):
        ax.plot(epochs, history[name], marker=".", label="training")
        ax.plot(epochs, history[f"val_{name}"], marker=".", label="validation")
        ax.set(xlabel="epoch", title=name)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.savefig(path, dpi=100)


def plot_confusion_matrix(confusion, path, class_names=CLASS_NAMES):
    """Counts of test images, rows: true class, columns: predicted class."""
    confusion = np.asarray(confusion)
    fig = Figure(figsize=(4.2, 3.8), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(confusion, cmap="Blues")
    fig.colorbar(image, ax=ax)
    ticks = range(len(class_names))
    ax.set(xticks=ticks, yticks=ticks, xticklabels=class_names, yticklabels=class_names)
    ax.set(xlabel="predicted", ylabel="true", title="test split")
    for (row, col), count in np.ndenumerate(confusion):
        dark = count > confusion.max() / 2
        ax.text(col, row, f"{count:,}", ha="center", va="center", color="w" if dark else "k")
    fig.savefig(path, dpi=100)


def plot_misclassified(mistakes, path, class_names=CLASS_NAMES, columns=4):
    """A grid of wrongly classified images ``(image, true label, P(class 1), name)``, each
    titled with its file name, its true class and P(class 1)."""
    rows = max(1, math.ceil(len(mistakes) / columns))
    fig = Figure(figsize=(2.4 * columns, 2.8 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, columns)).reshape(-1)
    for ax in axes:
        ax.axis("off")
    if not mistakes:
        axes[0].text(0, 0.5, "no misclassified test images", fontsize=12)
    positive = class_names[1]
    for ax, (image, label, probability, name) in zip(axes, mistakes, strict=False):
        ax.imshow(np.clip(image, 0, 255).astype("uint8"))
        ax.set_title(
            f"{name}\ntrue {class_names[label]}, P({positive}) = {probability:.2f}", fontsize=8
        )
    fig.savefig(path, dpi=72)  # photos compress badly as PNG: 16 of them in about 0.8 MB


def evaluate_run(out_dir, split_dir, image_size, batch_size, strategy=None, verbose=1):
    """Evaluate ``best.keras`` of a run on the test split; write metrics.json and the figures.

    ``metrics.json`` also lists the ``top_losses`` (file, true class, P(dog)) that
    ``misclassified.png`` shows, as the photos are on disk (not as small as the network saw
    them: a word or a placeholder stays readable).
    """
    import tensorflow as tf

    strategy = strategy or tf.distribute.get_strategy()
    if not (out_dir / "best.keras").exists():
        raise MissingInputError(f"{out_dir} holds no best.keras: train the run first.")
    with strategy.scope():
        model = keras.saving.load_model(out_dir / "best.keras")
        test_data = make_dataset(split_dir, "test", image_size, batch_size)
        metrics, logits = evaluate(model, test_data, verbose=verbose)
    root, rows = read_split(split_dir, "test")  # make_dataset's order
    labels = np.array([CLASS_NAMES.index(label) for _, label in rows])
    worst = top_losses(logits, labels)
    probabilities = expit(logits)
    mistakes = [(np.asarray(keras.utils.load_img(root / rows[i][0])), int(labels[i]),
                 float(probabilities[i]), rows[i][0]) for i in worst]  # fmt: skip
    metrics = {
        "split": "test", "model": "best.keras", "classes": list(CLASS_NAMES), **metrics,
        "top_losses": [{"path": name, "label": CLASS_NAMES[label], "probability_dog": p}
                       for _, label, p, name in mistakes],
    }  # fmt: skip
    write_atomically(out_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    if (out_dir / "history.csv").exists():  # not if it was damaged and set aside
        history = read_history(out_dir / "history.csv")
        plot_training_curves(history, out_dir / "training_curves.png")
    plot_confusion_matrix(metrics["confusion_matrix"], out_dir / "confusion_matrix.png")
    plot_misclassified(mistakes, out_dir / "misclassified.png")
    return metrics
