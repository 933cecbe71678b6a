"""The names the notebooks' cells use, in one namespace: ``from densenet_tutorial.lab import *``.

The notebooks show the package's own code (cells copied by ``scripts/sync_notebooks.py``), and
that code refers to constants and helpers of its modules, which a learner need not read to
follow the idea; the helpers of ``densenet_tutorial.notebooks`` (finding the images, a run
folder, a trained model) are here too. Each name is defined in the module it is imported
from here; nothing is defined in this module.
"""

from densenet_tutorial.config import run_config
from densenet_tutorial.data import CLASS_NAMES, augmentation, make_dataset, read_split
from densenet_tutorial.data.pipeline import training_epochs, training_steps
from densenet_tutorial.errors import SettingError
from densenet_tutorial.evaluate import read_history
from densenet_tutorial.model import build_densenet
from densenet_tutorial.notebooks import (
    data_folder,
    draw_test_images,
    find_images,
    find_model,
    photo_path,
    remember_run,
    run_folder,
    show_tensorboard,
    trained_settings,
)
from densenet_tutorial.training import (
    LABEL_SMOOTHING,
    LEARNING_RATE,
    MOMENTUM,
    NO_WEIGHT_DECAY,
    REFERENCE_BATCH,
    SEED,
    WARMUP_FRACTION,
    WEIGHT_DECAY,
    AugmentedModel,
    compile_model,
    learning_rate_schedule,
    pick_strategy,
)
from densenet_tutorial.visualize import *  # noqa: F403 (its __all__: grad_cam, overlay, ...)
from densenet_tutorial.visualize import __all__ as _visualize
from densenet_tutorial.visualize.cam import (
    activations_and_gradients,
    computes_in_float32,
    copy_in_float32,
    get_layer,
    target_classes,
)
from densenet_tutorial.visualize.faithfulness import (
    centred_gaussians,
    curves,
    faithfulness_table,
    random_maps,
)

__all__ = [
    *_visualize,
    "CLASS_NAMES",
    "LABEL_SMOOTHING",
    "LEARNING_RATE",
    "MOMENTUM",
    "NO_WEIGHT_DECAY",
    "REFERENCE_BATCH",
    "SEED",
    "WARMUP_FRACTION",
    "WEIGHT_DECAY",
    "AugmentedModel",
    "SettingError",
    "activations_and_gradients",
    "augmentation",
    "build_densenet",
    "centred_gaussians",
    "compile_model",
    "computes_in_float32",
    "copy_in_float32",
    "curves",
    "data_folder",
    "draw_test_images",
    "find_images",
    "find_model",
    "photo_path",
    "remember_run",
    "run_config",
    "run_folder",
    "show_tensorboard",
    "trained_settings",
    "faithfulness_table",
    "get_layer",
    "learning_rate_schedule",
    "make_dataset",
    "pick_strategy",
    "random_maps",
    "read_history",
    "read_split",
    "target_classes",
    "training_epochs",
    "training_steps",
]
