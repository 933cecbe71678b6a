"""Feature maps and Grad-CAM for any Keras model, with checks that a reader can trust them.

- ``features``: ``feature_maps`` / ``plot_feature_maps`` (one layer per stage, found by
  name) and ``dense_connectivity`` / ``plot_dense_connectivity`` (feature reuse, Fig. 5);
- ``cam``: ``grad_cam`` (Selvaraju et al. 2017) and ``grad_cam_plus_plus`` (Chattopadhay
  et al. 2018) on the logit, in batches, in float32; ``cam_layer``: the layer explained
  unless told (``relu``, or at small inputs an earlier block's finer maps);
- ``display``: ``overlay`` (an OpenCV colormap on the RGB image) and ``plot_gallery``;
- ``sanity``: ``cascading_randomization`` / ``plot_randomization`` (Adebayo et al. 2018);
- ``explain``: your own photo (``explain_photo``, ``plot_photo``), and heatmap overlays of image
  files as PNG (``python -m densenet_tutorial explain``).
"""

from densenet_tutorial.visualize.cam import (
    cam_layer,
    grad_cam,
    grad_cam_plus_plus,
    predictions,
)
from densenet_tutorial.visualize.display import overlay, plot_gallery, plot_photo
from densenet_tutorial.visualize.explain import explain, explain_photo
from densenet_tutorial.visualize.features import (
    default_feature_layers,
    dense_connectivity,
    feature_maps,
    plot_dense_connectivity,
    plot_feature_maps,
)
from densenet_tutorial.visualize.sanity import (
    cascading_randomization,
    plot_randomization,
    randomization_steps,
)

__all__ = [
    "cascading_randomization",
    "default_feature_layers",
    "dense_connectivity",
    "explain",
    "explain_photo",
    "feature_maps",
    "cam_layer",
    "grad_cam",
    "grad_cam_plus_plus",
    "overlay",
    "plot_dense_connectivity",
    "plot_feature_maps",
    "plot_gallery",
    "plot_photo",
    "plot_randomization",
    "predictions",
    "randomization_steps",
]
