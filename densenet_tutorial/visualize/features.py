"""Feature maps, stage by stage, and a picture of dense connectivity itself.

Layers are found by their Keras names (those of ``keras.applications.densenet``), never by
position, so the same code works for DenseNet-121, -169, -201 or a tiny test network.
"""

import re

import keras
import matplotlib.pyplot as plt
import numpy as np

from densenet_tutorial.errors import SettingError
from densenet_tutorial.visualize.cam import get_layer


def default_feature_layers(model):
    """One layer per stage: the stem (``pool1``, else ``conv1_relu``), the end of each dense
    block (``conv{b}_block{n}_concat``), each transition (``pool{b}_pool``), the final ``relu``.
    """
    names = [layer.name for layer in model.layers]
    stem = "pool1" if "pool1" in names else "conv1_relu"
    chosen = []
    for name in names:
        block_end = re.fullmatch(r"(conv\d+_block)\d+_concat", name)
        if block_end and chosen and chosen[-1].startswith(block_end[1]):
            chosen[-1] = name  # a later layer of the same dense block: keep only the last
        elif name == stem or block_end or re.fullmatch(r"pool\d+_pool|relu", name):
            chosen.append(name)
    if not chosen:
        raise SettingError(f"{model.name} has no DenseNet stage names; pass layer_names=[...].")
    return chosen


def feature_maps(model, image, layer_names=None):
    """Activations of the named layers for one image: {name: float32 array (H, W, C)}."""
    layer_names = layer_names or default_feature_layers(model)
    outputs = [get_layer(model, name).output for name in layer_names]
    activations = keras.Model(model.input, outputs)(as_batch(image), training=False)
    if len(layer_names) == 1:
        activations = [activations]
    return {
        name: keras.ops.convert_to_numpy(a)[0].astype(np.float32)
        for name, a in zip(layer_names, activations, strict=True)
    }


def as_batch(image):
    """One RGB image (H, W, 3) as a float32 batch of one."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 3:
        raise SettingError(f"Expected one image of shape (height, width, 3), got {image.shape}.")
    return image[None]


def plot_feature_maps(maps, channels=8, cmap="viridis"):
    """For each layer of ``maps`` (from ``feature_maps``), the ``channels`` channels with the
    largest mean activation on this image, one row per layer titled with name, shape and
    channel indices. Returns the matplotlib figure.
    """
    figure = plt.figure(figsize=(1.5 * channels, 1.9 * len(maps)), layout="constrained")
    rows = np.atleast_1d(figure.subfigures(len(maps), 1))
    for row, (name, activation) in zip(rows, maps.items(), strict=True):
        strongest = np.argsort(activation.mean(axis=(0, 1)))[::-1][:channels]
        shape = "x".join(str(s) for s in activation.shape)
        row.suptitle(f"{name}  ({shape})  channels {', '.join(map(str, strongest))}", fontsize=9)
        for axes, channel in zip(np.atleast_1d(row.subplots(1, channels)), strongest, strict=False):
            axes.imshow(activation[..., channel], cmap=cmap)
            axes.set_title(f"#{channel}", fontsize=8)
        for axes in row.axes:
            axes.axis("off")
    return figure


def dense_connectivity(model, image, block=1):
    """How much each earlier layer feeds each layer of dense block ``block`` (1-based).

    Layer l of a dense block reads the concatenation [x0, x1, ..., x_{l-1}] (Eq. 2): the
    block's input x0, then growth_rate new channels from each earlier layer. Its BN-ReLU
    turns them into z and its 1x1 convolution (weights W) reads z. The entry (s, l) is the
    mean over the channels c of source s of

        mean over positions of z_c  x  mean over outputs of |W_c|,

    i.e. the paper's Fig. 5 measure (the average absolute weight from s to l) weighted by how
    active each channel is on this image: a channel feeds layer l only if it is both active
    and weighted. Large values far from the diagonal are feature reuse. The last column is the
    transition layer after the block (if any), which reads every source. Entries where s does
    not feed l are NaN. Needs the concatenations as layers (``memory_efficient=False``).
    """
    b = block + 1  # Keras names: dense block 1 is conv2
    names = [layer.name for layer in model.layers]
    num_layers = sum(bool(re.fullmatch(rf"conv{b}_block\d+_1_conv", n)) for n in names)
    if num_layers == 0:
        raise SettingError(
            f"{model.name} has no dense block {block} with its layers at the top level "
            f"(conv{b}_block1_1_conv); a memory-efficient model hides them: rebuild it with "
            f"memory_efficient=False and load the same weights."
        )
    layers = range(1, num_layers + 1)
    targets = [(f"conv{b}_block{i}_0_relu", f"conv{b}_block{i}_1_conv") for i in layers]
    if f"pool{b}_conv" in names:
        targets.append((f"pool{b}_relu", f"pool{b}_conv"))
    input_channels = get_layer(model, f"conv{b}_block1_0_relu").output.shape[-1]
    growth_rate = get_layer(model, f"conv{b}_block1_2_conv").output.shape[-1]
    # Source s = 0 is the block input, s >= 1 the growth_rate channels made by layer s.
    sources = np.repeat(np.arange(num_layers + 1), [input_channels] + [growth_rate] * num_layers)
    activations = feature_maps(model, image, [relu for relu, _ in targets])
    matrix = np.full((num_layers + 1, len(targets)), np.nan, dtype=np.float32)
    for column, (relu, conv) in enumerate(targets):
        z = activations[relu].mean(axis=(0, 1))
        w = np.abs(keras.ops.convert_to_numpy(get_layer(model, conv).kernel)).mean(axis=(0, 1, 3))
        reads = sources[: len(z)]
        matrix[: reads[-1] + 1, column] = np.bincount(reads, weights=z * w) / np.bincount(reads)
    return matrix


def plot_dense_connectivity(matrix, block=1, cmap="viridis"):
    """``dense_connectivity`` as a heat map, laid out like Fig. 5 of Huang et al. (2017)."""
    num_sources, num_targets = matrix.shape
    figure, axes = plt.subplots(
        figsize=(0.3 * num_targets + 4, 0.3 * num_sources + 2.5), layout="constrained"
    )
    image = axes.imshow(np.ma.masked_invalid(matrix), cmap=cmap, origin="lower")
    targets = [str(i) for i in range(1, num_sources)] + ["T"] * (num_targets == num_sources)
    axes.set_xticks(range(num_targets), targets)
    axes.set_yticks(range(num_sources), ["in"] + [str(s) for s in range(1, num_sources)])
    axes.set_xlabel("target layer l (T: transition)")
    axes.set_ylabel("source s (in: block input)")
    axes.set_title(f"Dense block {block}: what each layer reads")
    figure.colorbar(image, ax=axes, label="activation x |weight|, per channel")
    return figure
