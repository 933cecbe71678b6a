"""Your own photos: the prediction and Grad-CAM of one photo, and overlays written as PNG.

- ``explain_photo``: the prediction, its probability and the Grad-CAM of both classes for one
  photo (a path or an RGB array), read as in training: notebooks 04 and 06;
- ``explain``: ``python -m densenet_tutorial explain``, Grad-CAM overlays of image files.
"""

from pathlib import Path

import cv2
import keras
import numpy as np
import tensorflow as tf

from densenet_tutorial.data.pipeline import load_image
from densenet_tutorial.errors import MissingInputError, SettingError
from densenet_tutorial.visualize.cam import CLASS_NAMES, cam_layer, grad_cam, predictions
from densenet_tutorial.visualize.display import overlay


def explain(
    model_path, image_paths, out_dir, layer_name=None, target=None, alpha=0.4,
    label_names=CLASS_NAMES,
):  # fmt: skip
    """Write ``<image name>_gradcam.png`` into ``out_dir`` for each image: the Grad-CAM of
    ``target`` (None: the predicted class) drawn on the image as the model sees it.

    Images are read and resized exactly as in training (``data.pipeline.load_image``).
    Returns one dict per image: ``image``, ``predicted`` label, ``probability`` and the
    ``overlay`` path written. ``layer_name``: None for ``cam_layer(model)``.
    """
    model = load_model(model_path)
    layer_name = layer_name or cam_layer(model)
    size = input_size(model)
    images = np.stack([read_image(path, size) for path in image_paths])
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


def explain_photo(model, photo, layer_name=None, label_names=CLASS_NAMES):
    """The prediction for one photo and the Grad-CAM of each class (Selvaraju et al. 2017).

    ``photo``: a file path (read and resized as in training) or an RGB array of the model's
    input size. Returns ``image`` (as the model sees it), ``predicted`` (a label),
    ``probability`` (of that label) and ``heatmaps`` (label -> map in [0, 1]) of the layer
    ``layer_name`` (None: ``cam_layer(model)``).
    """
    layer_name = layer_name or cam_layer(model)
    if isinstance(photo, (str, Path)):
        photo = read_image(photo, input_size(model))
    images = np.asarray(photo, dtype=np.float32)[None]
    classes, probabilities = predictions(model.predict(images, verbose=0))
    heatmaps = {name: grad_cam(model, images, layer_name, target=name, label_names=label_names)[0]
                for name in label_names}  # fmt: skip
    return {"image": images[0].astype(np.uint8), "predicted": label_names[classes[0]],
            "probability": float(probabilities[0]), "heatmaps": heatmaps}  # fmt: skip


def input_size(model):
    """The side of the square images ``model`` takes; a clear error for other models."""
    height, width = model.input_shape[1:3]
    if height is None or height != width:
        raise SettingError(f"{model.name} does not take square images of a fixed size.")
    return height


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
