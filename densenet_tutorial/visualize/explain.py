"""``python -m densenet_tutorial explain``: Grad-CAM overlays of image files, as PNG files."""

from pathlib import Path

import cv2
import keras
import numpy as np
import tensorflow as tf

from densenet_tutorial.data.pipeline import load_image
from densenet_tutorial.errors import MissingInputError, SettingError
from densenet_tutorial.visualize.cam import CLASS_NAMES, grad_cam, predictions
from densenet_tutorial.visualize.display import overlay


def explain(
    model_path, image_paths, out_dir, layer_name="relu", target=None, alpha=0.4,
    label_names=CLASS_NAMES,
):  # fmt: skip
    """Write ``<image name>_gradcam.png`` into ``out_dir`` for each image: the Grad-CAM of
    ``target`` (None: the predicted class) drawn on the image as the model sees it.

    Images are read and resized exactly as in training (``data.pipeline.load_image``).
    Returns one dict per image: ``image``, ``predicted`` label, ``probability`` and the
    ``overlay`` path written.
    """
    model = load_model(model_path)
    height, width = model.input_shape[1:3]
    if height is None or height != width:
        raise SettingError(f"{model_path} does not take square images of a fixed size.")
    images = np.stack([read_image(path, height) for path in image_paths])
    heatmaps = grad_cam(model, images, layer_name, target, label_names=label_names)
    classes, probabilities = predictions(model.predict(images, verbose=0))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for i, (path, image, heatmap) in enumerate(zip(image_paths, images, heatmaps, strict=True)):
        out = out_dir / f"{Path(path).stem}_gradcam.png"
        if out in (w["overlay"] for w in written):  # two images of the same name
            out = out_dir / f"{Path(path).stem}_{i}_gradcam.png"
        cv2.imwrite(str(out), cv2.cvtColor(overlay(image, heatmap, alpha), cv2.COLOR_RGB2BGR))
        written.append(
            {"image": str(path), "predicted": label_names[classes[i]],
             "probability": float(probabilities[i]), "overlay": out}
        )  # fmt: skip
    return written


def load_model(path):
    """A saved ``.keras`` model, without its optimizer state (not needed to explain it)."""
    import densenet_tutorial.model  # noqa: F401  (registers the model's custom layer)

    if not Path(path).is_file():
        raise MissingInputError(
            f"No model file {path}: give a saved .keras model (RUN/best.keras)."
        )
    return keras.saving.load_model(path, compile=False)


def read_image(path, image_size):
    """``load_image`` (RGB uint8, as in training) with errors that say which file is wrong."""
    if not Path(path).is_file():
        raise MissingInputError(f"No image file {path}.")
    try:
        return load_image(str(path), image_size).numpy()
    except tf.errors.InvalidArgumentError as error:
        raise SettingError(f"{path} is not an image TensorFlow can decode (corrupt?).") from error
