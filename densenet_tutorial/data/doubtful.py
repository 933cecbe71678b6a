"""Doubtful photos: the ones a network trained on ImageNet does not see as the labelled animal.

The Kaggle labels come from the file names, and some are wrong or mean nothing: forum threads
of the Dogs-vs-Cats Redux competition list ``dog.5604.jpg`` (the words "camera shy"),
``cat.1450.jpg`` (both animals) and several "photos" that are blocks of text. A classifier of
ImageNet's 1,000 classes (DenseNet-169 with Keras's ImageNet weights, notebook 06) knows 118
dog breeds and 5 domestic cats, so it can point at such photos without having seen this data
set:

- **no cat or dog in its top 5**: none of its five most probable classes is a cat or a dog;
- **confidently the other animal**: the probabilities of the other label's classes add up
  to ``CONFIDENT`` or more.

``find_doubtful`` works for any Keras classifier (``classes`` says which of its outputs mean
which label). It only *points*: nothing is removed, the labels stay the data set's. A learner
looks at the gallery and decides; a network's own confusion is not evidence of a wrong label,
and silently dropping what a pretrained network dislikes would make the test split easier
than the data set it stands for.
"""

from pathlib import Path

import numpy as np

IMAGENET_CLASSES = {
    "cat": tuple(range(281, 286)),  # tabby, tiger cat, Persian, Siamese, Egyptian cat
    "dog": tuple(range(151, 269)),  # the 118 dog breeds, Chihuahua to Mexican hairless
}
"""ImageNet's (ILSVRC-2012) classes of domestic cats and of dogs, by index: the order of
``imagenet_class_index.json``, which ``keras.applications.imagenet_utils.decode_predictions``
reads. The wild cats (cougar, lynx, the big cats: 286-293) and the wolves, foxes and wild dogs
(269-280) are left out."""
TOP = 5
CONFIDENT = 0.9


def class_probabilities(outputs, from_logits=None):
    """Probabilities from a classifier's ``outputs``: a softmax of logits, or the outputs as
    they are when they already are probabilities (``from_logits=None``: rows of non-negative
    numbers adding up to 1 are taken as probabilities)."""
    outputs = np.asarray(outputs, np.float64)
    if from_logits is None:
        from_logits = not (outputs.min() >= 0 and np.allclose(outputs.sum(axis=1), 1, atol=1e-3))
    if not from_logits:
        return outputs
    exp = np.exp(outputs - outputs.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def judge(probabilities, labels, classes=None, top=TOP, confident=CONFIDENT):
    """For each row of ``probabilities`` and its label, why the photo is doubtful, or ``""``."""
    classes = classes or IMAGENET_CLASSES
    animals = np.array(sorted({c for indices in classes.values() for c in indices}))
    reasons = []
    for row, label in zip(probabilities, labels, strict=True):
        best = np.argsort(row)[::-1][:top]
        others = [other for other in classes if other != label]
        mass = {other: row[list(classes[other])].sum() for other in others}
        if not np.isin(best, animals).any():
            reasons.append(f"no cat or dog in the top {top}")
        elif others and max(mass.values()) >= confident:
            other = max(mass, key=mass.get)
            reasons.append(f"{mass[other]:.0%} sure it is a {other}")
        else:
            reasons.append("")
    return reasons


def find_doubtful(model, root, files, classes=None, image_size=None, batch_size=32,
                  from_logits=None, preprocess=None, top=TOP, confident=CONFIDENT,
                  verbose=1):  # fmt: skip
    """The doubtful photos among ``files`` (``[(relative_path, label), ...]`` under ``root``).

    ``model`` is any Keras classifier; it sees each photo as the input pipeline reads it
    (RGB in [0, 255], squashed to ``image_size``, by default the model's input size), through
    ``preprocess`` if given (e.g. ``keras.applications.densenet.preprocess_input``).
    ``classes`` maps each label to the indices of the model's classes that mean it (default:
    ``IMAGENET_CLASSES``). Returns dictionaries, in the order of ``files``: ``path``,
    ``label``, ``reason``, ``top`` (the ``top`` classes and their probabilities) and the
    probability of each label's classes (``p_cat``, ``p_dog``). ``verbose=1`` shows Keras's
    progress bar (thousands of photos take minutes).
    """
    import keras
    import tensorflow as tf

    from densenet_tutorial.data.pipeline import load_image

    classes = classes or IMAGENET_CLASSES
    image_size = image_size or model.input_shape[1]
    paths = [str(Path(root) / path) for path, _ in files]
    images = tf.data.Dataset.from_tensor_slices(paths).map(
        lambda path: load_image(path, image_size), num_parallel_calls=tf.data.AUTOTUNE
    )
    outputs = []
    progress = keras.utils.Progbar(len(paths), verbose=verbose, unit_name="photo")
    for batch in images.batch(batch_size):
        batch = tf.cast(batch, tf.float32)
        if preprocess is not None:
            batch = preprocess(batch)
        outputs.append(np.asarray(model(batch, training=False)))
        progress.add(len(batch))
    if not outputs:
        return []
    probabilities = class_probabilities(np.concatenate(outputs), from_logits)
    labels = [label for _, label in files]
    found = []
    for (path, label), row, reason in zip(
        files, probabilities, judge(probabilities, labels, classes, top, confident), strict=True
    ):
        if reason:
            best = np.argsort(row)[::-1][:top]
            mass = {
                f"p_{name}": float(row[list(indices)].sum()) for name, indices in classes.items()
            }
            found.append({"path": path, "label": label, "reason": reason,
                          "top": [(int(c), float(row[c])) for c in best], **mass})  # fmt: skip
    return found


def imagenet_names():
    """The names of ImageNet's 1,000 classes, by index, from Keras (``decode_predictions``
    downloads ``imagenet_class_index.json`` once into its cache); None without a network."""
    from keras.applications.imagenet_utils import decode_predictions

    try:
        decoded = decode_predictions(np.eye(1000), top=1)
    except Exception:  # Keras raises a bare Exception when the download fails
        return None
    return [name for ((_, name, _),) in decoded]


def plot_doubtful(found, root, names=None, count=12, columns=4):
    """A gallery of the first ``count`` photos of ``find_doubtful``: each with its file name,
    label, reason and the classifier's most probable class (by ``names``, else its index).
    Returns the matplotlib figure, or None when there is nothing to show."""
    import matplotlib.pyplot as plt
    from PIL import Image

    shown = found[:count]
    if not shown:
        return None
    columns = min(columns, len(shown))
    rows = -(-len(shown) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 3.6 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, row in zip(axes.flat, shown, strict=False):
        best, probability = row["top"][0]
        name = names[best] if names else f"class {best}"
        ax.imshow(Image.open(Path(root) / row["path"]).convert("RGB"))
        ax.set_title(f"{Path(row['path']).name} ({row['label']})\n{row['reason']}\n"
                     f"top: {name} {probability:.0%}", fontsize=8)  # fmt: skip
    return figure
