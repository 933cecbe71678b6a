"""A training run's configuration: every setting with its default, in one frozen object.

``RunConfig()`` is the real run, DenseNet-169 (the paper's Table 1, k = 32) at 224 px for 40
epochs; ``run_config(quick=True)`` is quick mode (``--quick``, ``QUICK = True`` in the
notebooks), a small DenseNet on small images for a few short epochs: minutes on a 2-vCPU CPU,
every step of the real run. ``train`` takes one and saves it in the run's ``config.json``,
where a rerun must match it to resume (``from_saved`` reads a saved one back). This module
imports no TensorFlow, so the command line's help, which shows these defaults, starts at once.
"""

import dataclasses

from densenet_tutorial.errors import SettingError

PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
QUICK = {"blocks": (2, 4, 4, 2), "growth_rate": 12, "image_size": 64, "epochs": 5}
QUICK_STEPS_PER_EPOCH = 40  # quick mode also caps the training steps of each epoch
RUN_SETTINGS = ("blocks", "growth_rate", "image_size", "batch_size", "epochs")
"""The network and the budget: notebook 03's parameters, the start of a run folder's name."""


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """What a run trains and how; the recipe's fixed parts are in ``training``."""

    blocks: tuple = (6, 12, 32, 32)  # layers per dense block: DenseNet-169
    growth_rate: int = 32  # k
    image_size: int = 224  # side in pixels
    batch_size: int = 32  # images per replica (per GPU); 7.1 GB at 224 px in float32 on a CPU
    epochs: int = 40
    compression: float = 0.5  # theta, the transition layers' share of channels kept
    memory_efficient: bool = False  # recompute the bottlenecks in the backward pass
    seed: int = 42
    precision: str = "auto"  # a Keras dtype policy, or "auto" (training.pick_precision)
    deterministic: bool = False  # deterministic TensorFlow ops (slower)
    augment: bool = True  # data.augmentation() in the training step
    learning_rate: float = 0.1  # peak rate per 256 images, scaled linearly with the batch
    pretrained: str | None = None  # "imagenet" or a weights file: fine-tuning DenseNet-169
    quick: bool = False  # quick mode: also at most QUICK_STEPS_PER_EPOCH steps an epoch

    def __post_init__(self):
        object.__setattr__(self, "blocks", tuple(self.blocks))  # build_densenet checks them
        if self.pretrained is not None:
            object.__setattr__(self, "pretrained", str(self.pretrained))
        for name in ("batch_size", "epochs"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise SettingError(f"{name}={value!r} is not allowed: a whole number >= 1.")
        if self.precision not in PRECISIONS:
            raise SettingError(
                f"precision={self.precision!r} is not allowed: use one of {PRECISIONS}."
            )

    @property
    def steps_per_epoch_cap(self):
        """Quick mode's limit on the training steps of an epoch (None: every batch)."""
        return QUICK_STEPS_PER_EPOCH if self.quick else None

    def to_dict(self):
        """The settings as JSON keeps them (``blocks`` a list)."""
        return {**dataclasses.asdict(self), "blocks": list(self.blocks)}

    def options(self):
        """The settings besides ``RUN_SETTINGS`` and ``quick`` that differ from their default."""
        default = RunConfig()
        options = [name for name in NAMES if name not in RUN_SETTINGS + ("quick",)]
        return {
            name: getattr(self, name)
            for name in options
            if getattr(self, name) != getattr(default, name)
        }


NAMES = tuple(field.name for field in dataclasses.fields(RunConfig))


def run_config(quick=False, **given):
    """The ``RunConfig`` of the settings ``given`` (a name that is not one is refused); those
    left out or None take the recipe's value or, with ``quick``, quick mode's (``QUICK``)."""
    unknown = sorted(set(given) - set(NAMES))
    if unknown:
        raise SettingError(
            f"{', '.join(unknown)}: not a setting of a run; the settings are {', '.join(NAMES)}."
        )
    chosen = {name: value for name, value in given.items() if value is not None}
    return RunConfig(**{**(QUICK if quick else {}), **chosen, "quick": quick})


def from_saved(saved):
    """The ``RunConfig`` in a saved dict of settings, other entries (the recipe's) ignored."""
    return run_config(**{name: saved[name] for name in NAMES if name in saved})
