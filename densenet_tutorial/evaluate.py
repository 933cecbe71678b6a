"""Evaluation of a trained run: the test split, once, with the best model; and the run's figures.

- ``evaluate``: accuracy, loss, AUC, precision, recall and the confusion matrix of a one-logit
  binary classifier on a dataset, plus its first mistakes;
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
from tqdm.auto import tqdm

from densenet_tutorial.data import CLASS_NAMES, make_dataset
from densenet_tutorial.data.files import DamagedFile, read_csv
from densenet_tutorial.errors import MissingInputError

MAX_MISTAKES = 16  # shown in misclassified.png


def evaluate(model, dataset, max_mistakes=MAX_MISTAKES, verbose=1):
    """Metrics of ``model`` (one logit, class 1 when the logit is > 0) on ``dataset``.

    Returns ``(metrics, mistakes)``; ``mistakes`` holds up to ``max_mistakes`` tuples
    ``(image, true_label, probability_of_class_1)``. The loss is plain binary cross-entropy
    (without the label smoothing used in training), so it compares across recipes.
    """
    import tensorflow as tf

    confusion = np.zeros((2, 2), dtype=int)
    auc = keras.metrics.AUC(from_logits=True)
    total_loss = 0.0
    mistakes = []
    steps = int(dataset.cardinality())
    # One graph for every batch, the smaller last one too (predict_on_batch traces anew for it).
    logits_of = tf.function(
        lambda images: model(images, training=False), input_signature=[dataset.element_spec[0]]
    )
    for images, labels in tqdm(dataset, total=steps if steps > 0 else None, disable=not verbose):
        logits = np.asarray(logits_of(images), dtype=np.float64).reshape(-1)
        labels = np.asarray(labels).reshape(-1).astype(int)
        predicted = (logits > 0).astype(int)
        np.add.at(confusion, (labels, predicted), 1)
        auc.update_state(labels, logits)
        total_loss += float(
            np.sum(keras.losses.binary_crossentropy(labels[:, None], logits[:, None], True))
        )
        for i in np.flatnonzero(predicted != labels)[: max_mistakes - len(mistakes)]:
            mistakes.append((np.asarray(images[i]), int(labels[i]), float(expit(logits[i]))))
    (tn, fp), (fn, tp) = confusion
    metrics = {
        "images": int(confusion.sum()),
        "accuracy": float((tp + tn) / confusion.sum()),
        "loss": float(total_loss / confusion.sum()),
        "auc": float(auc.result()),
        "precision": float(tp / (tp + fp)) if tp + fp else 0.0,
        "recall": float(tp / (tp + fn)) if tp + fn else 0.0,
        "confusion_matrix": confusion.tolist(),
    }
    return metrics, mistakes


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
    """A grid of wrongly classified images with true class, prediction and P(class 1)."""
    rows = max(1, math.ceil(len(mistakes) / columns))
    fig = Figure(figsize=(3 * columns, 3.3 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, columns)).reshape(-1)
    for ax in axes:
        ax.axis("off")
    if not mistakes:
        axes[0].text(0, 0.5, "no misclassified test images", fontsize=12)
    positive = class_names[1]
    for ax, (image, label, probability) in zip(axes, mistakes, strict=False):
        ax.imshow(np.clip(image, 0, 255).astype("uint8"))
        predicted = class_names[int(probability > 0.5)]
        ax.set_title(
            f"true {class_names[label]}, predicted {predicted}\nP({positive}) = {probability:.2f}",
            fontsize=10,
        )
    fig.savefig(path, dpi=100)


def evaluate_run(out_dir, split_dir, image_size, batch_size, strategy=None, verbose=1):
    """Evaluate ``best.keras`` of a run on the test split; write metrics.json and the figures."""
    import tensorflow as tf

    strategy = strategy or tf.distribute.get_strategy()
    if not (out_dir / "best.keras").exists():
        raise MissingInputError(f"{out_dir} holds no best.keras: train the run first.")
    with strategy.scope():
        model = keras.saving.load_model(out_dir / "best.keras")
    test_data = make_dataset(split_dir, "test", image_size, batch_size)
    metrics, mistakes = evaluate(model, test_data, verbose=verbose)
    metrics = {"split": "test", "model": "best.keras", "classes": list(CLASS_NAMES), **metrics}
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    if (out_dir / "history.csv").exists():  # not if it was damaged and set aside
        history = read_history(out_dir / "history.csv")
        plot_training_curves(history, out_dir / "training_curves.png")
    plot_confusion_matrix(metrics["confusion_matrix"], out_dir / "confusion_matrix.png")
    plot_misclassified(mistakes, out_dir / "misclassified.png")
    return metrics
