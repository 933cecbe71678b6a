"""DenseNet built from Keras layers (Huang et al., "Densely Connected Convolutional Networks").

One short function per idea of the paper (section numbers refer to arXiv 1608.06993v5):

- ``composite_function``: H(.) = BN -> ReLU -> Conv, the pre-activation unit (Sec. 3);
- ``bottleneck``: the 1x1 BN-ReLU-Conv that brings a dense layer's input to
  ``bottleneck_width * k`` channels (Sec. 3, "Bottleneck layers"): it narrows a wide input
  deep in a block and widens the narrow one at the start of the first;
- ``dense_layer``: one layer of a dense block, the bottleneck, then BN-ReLU-Conv(3x3) to
  ``k`` new feature maps;
- ``dense_block``: layer l sees the concatenation of all earlier feature maps (Eq. 2);
  ``memory_efficient_dense_block``: the same block, recomputing instead of storing
  (Pleiss et al. 2017);
- ``transition_layer``: BN-ReLU-Conv1x1 to ``floor(compression * m)`` channels, then 2x2
  average pooling (Sec. 3, "Pooling layers" and "Compression");
- ``stem`` and ``head``: the ImageNet entry (7x7 conv, 3x3 max pool) and exit (Table 1);
- ``build_densenet``: the whole network; ``densenet121`` ... ``densenet264`` are presets.

Layer names are those of ``keras.applications.densenet``, so any name found in the Keras
documentation (``conv3_block7_concat``, ``pool4_conv``, the final ``relu``) exists here too.
The recomputation itself lives in ``memory_efficient``; the stage table in ``architecture``.
The module knows nothing of files, labels or training.
"""

import math

import keras
from keras import layers

from densenet_tutorial.errors import SettingError
from densenet_tutorial.memory_efficient import Recomputed

BN_EPSILON = 1.001e-5  # as keras.applications.densenet
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # the "torch" preprocessing of keras.applications.densenet
IMAGENET_STD = (0.229, 0.224, 0.225)
POOLINGS = {"avg": layers.GlobalAveragePooling2D, "max": layers.GlobalMaxPooling2D}
DENSENET121 = (6, 12, 24, 16)  # layers per dense block (Table 1)
DENSENET169 = (6, 12, 32, 32)
DENSENET201 = (6, 12, 48, 32)
DENSENET264 = (6, 12, 64, 48)


def composite_function(x, filters, kernel_size, bn_name, relu_name, conv_name):
    """H(.) of Sec. 3: batch normalization, then ReLU, then a convolution without bias."""
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=bn_name)(x)
    x = layers.Activation("relu", name=relu_name)(x)
    return layers.Conv2D(filters, kernel_size, padding="same", use_bias=False, name=conv_name)(x)


def bottleneck(x, growth_rate, bottleneck_width, name):
    """The bottleneck of DenseNet-B (Sec. 3): BN-ReLU-Conv(1x1) to ``bottleneck_width * k``."""
    width = bottleneck_width * growth_rate
    return composite_function(x, width, 1, f"{name}_0_bn", f"{name}_0_relu", f"{name}_1_conv")


def dense_layer(x, growth_rate, bottleneck_width, name):
    """One layer of a dense block (Sec. 3): the bottleneck, then BN-ReLU-Conv(3x3) to k maps.

    ``x`` is the concatenation of all earlier feature maps of the block (Eq. 2). Returns
    only the ``growth_rate`` new maps.
    """
    x = bottleneck(x, growth_rate, bottleneck_width, name)
    return composite_function(x, growth_rate, 3, f"{name}_1_bn", f"{name}_1_relu", f"{name}_2_conv")


def dense_block(x, num_layers, growth_rate, bottleneck_width, name):
    """A dense block (Sec. 3, Fig. 1): each layer adds ``growth_rate`` maps to the stack.

    Layer i sees ``[x0, x1, ..., x_{i-1}]`` (Eq. 2), built as a chain of concatenations,
    each the previous one plus the newest maps, as keras.applications does.
    """
    for i in range(1, num_layers + 1):
        new_maps = dense_layer(x, growth_rate, bottleneck_width, f"{name}_block{i}")
        x = layers.Concatenate(name=f"{name}_block{i}_concat")([x, new_maps])
    return x


def memory_efficient_dense_block(x, num_layers, growth_rate, bottleneck_width, name):
    """``dense_block`` that keeps only the list of k-channel maps (Pleiss et al. 2017).

    Each layer's concatenation and bottleneck form a small model, ``Recomputed`` in the
    backward pass from that list instead of stored; the list is concatenated once, at the end.
    """
    features = [x]
    for i in range(1, num_layers + 1):
        layer = f"{name}_block{i}"
        inputs = [keras.Input(shape=f.shape[1:], dtype=f.dtype) for f in features]
        concatenated = layers.Concatenate(name=f"{layer}_input")(inputs)  # Eq. 2
        narrowing = keras.Model(
            inputs, bottleneck(concatenated, growth_rate, bottleneck_width, layer),
            name=f"{layer}_inner",
        )  # fmt: skip
        narrowed = Recomputed(narrowing, name=f"{layer}_bottleneck")(features)
        features.append(
            composite_function(
                narrowed, growth_rate, 3, f"{layer}_1_bn", f"{layer}_1_relu", f"{layer}_2_conv"
            )
        )
    return layers.Concatenate(name=f"{name}_block{num_layers}_concat")(features)


def transition_layer(x, compression, name):
    """Transition layer (Sec. 3): BN-ReLU-Conv(1x1) to floor(theta * m) maps, 2x2 avg pool."""
    filters = math.floor(compression * x.shape[-1])
    x = composite_function(x, filters, 1, f"{name}_bn", f"{name}_relu", f"{name}_conv")
    return layers.AveragePooling2D(2, strides=2, name=f"{name}_pool")(x)


def stem(x, channels):
    """The ImageNet entry (Table 1): 7x7 conv stride 2, BN-ReLU, 3x3 max pool stride 2."""
    x = layers.ZeroPadding2D(3, name="conv1_pad")(x)
    x = layers.Conv2D(channels, 7, strides=2, use_bias=False, name="conv1_conv")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name="conv1_bn")(x)
    x = layers.Activation("relu", name="conv1_relu")(x)
    x = layers.ZeroPadding2D(1, name="pool1_pad")(x)
    return layers.MaxPooling2D(3, strides=2, name="pool1")(x)


def normalization(name="normalize"):
    """Raw RGB pixels in [0, 255] -> ImageNet-standardised, as ``keras.applications.densenet``'s
    ``preprocess_input`` (the "torch" mode: scale to [0, 1], subtract mean, divide by std)."""
    return layers.Normalization(
        mean=[255 * m for m in IMAGENET_MEAN],
        variance=[(255 * s) ** 2 for s in IMAGENET_STD],
        name=name,
    )


def head(x, num_classes, pooling, dropout):
    """The exit: BN-ReLU, global pooling, dropout, and ``num_classes`` logits in float32."""
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name="bn")(x)
    x = layers.Activation("relu", name="relu")(x)
    x = POOLINGS[pooling](name=f"{pooling}_pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    # Logits (no sigmoid or softmax): losses use from_logits=True, Grad-CAM wants the score.
    return layers.Dense(num_classes, dtype="float32", name="predictions")(x)


def build_densenet(
    blocks=DENSENET169,
    growth_rate=32,
    compression=0.5,
    bottleneck_width=4,
    stem_channels=None,
    input_shape=(224, 224, 3),
    num_classes=1,
    pooling="avg",
    dropout=0.0,
    memory_efficient=False,
    name=None,
):
    """Build a DenseNet-BC (Sec. 3 and Table 1) as a functional ``keras.Model``.

    Input: RGB pixels in [0, 255] (uint8 or float); the first layer normalizes them.
    ``stem_channels=None`` means ``2 * growth_rate``, as in the paper. The model ends in
    ``num_classes`` logits (one logit for a binary task), named ``predictions``.
    ``memory_efficient=True`` recomputes each dense layer's concatenation and bottleneck in
    the backward pass instead of storing them (Pleiss et al. 2017): same weights, same outputs.
    """
    blocks = tuple(blocks)
    stem_channels = 2 * growth_rate if stem_channels is None else stem_channels
    validate_config(
        blocks,
        growth_rate,
        compression,
        bottleneck_width,
        stem_channels,
        input_shape,
        num_classes,
        pooling,
        dropout,
    )
    block = memory_efficient_dense_block if memory_efficient else dense_block
    inputs = keras.Input(shape=input_shape, name="image")
    x = normalization()(inputs)
    x = stem(x, stem_channels)
    for b, num_layers in enumerate(blocks, start=2):
        x = block(x, num_layers, growth_rate, bottleneck_width, f"conv{b}")
        if b < len(blocks) + 1:
            x = transition_layer(x, compression, f"pool{b}")
    outputs = head(x, num_classes, pooling, dropout)
    if name is None:
        name = f"densenet{depth(blocks)}"
    return keras.Model(inputs, outputs, name=name)


def depth(blocks):
    """Layers with weights: 2 convs per dense layer, stem, transitions, classifier.

    This gives 121, 169 and 201 for the paper's models; its "DenseNet-264" counts 265.
    """
    return 2 * sum(blocks) + len(blocks) + 1


def spatial_sizes(size, num_blocks):
    """Side length after the stem and after each transition (valid pooling floors odd sizes)."""
    size = (size + 2 * 3 - 7) // 2 + 1  # conv1: 7x7, stride 2, padding 3
    size = (size + 2 * 1 - 3) // 2 + 1  # pool1: 3x3, stride 2, padding 1
    sizes = [size]
    for _ in range(num_blocks - 1):
        size //= 2  # transition: 2x2 average pooling, stride 2
        sizes.append(size)
    return sizes


def validate_config(
    blocks, growth_rate, compression, bottleneck_width, stem_channels, input_shape,
    num_classes, pooling, dropout,
):  # fmt: skip
    """Raise ``SettingError`` (a ``ValueError``) naming the parameter, its value and what is
    allowed."""

    def check(ok, parameter, value, allowed):
        if not ok:
            raise SettingError(f"{parameter}={value!r} is not allowed: {allowed}.")

    def positive_int(value):
        return isinstance(value, int) and not isinstance(value, bool) and value >= 1

    check(
        len(blocks) >= 1 and all(positive_int(n) for n in blocks),
        "blocks", blocks, "give one or more dense blocks, each a whole number of layers >= 1",
    )  # fmt: skip
    check(positive_int(growth_rate), "growth_rate", growth_rate, "a whole number >= 1 (k)")
    check(
        isinstance(compression, (int, float)) and 0 < compression <= 1,
        "compression", compression, "a number in (0, 1] (theta; 0.5 in DenseNet-BC)",
    )  # fmt: skip
    check(
        positive_int(bottleneck_width), "bottleneck_width", bottleneck_width, "a whole number >= 1"
    )
    check(positive_int(stem_channels), "stem_channels", stem_channels, "a whole number >= 1")
    check(positive_int(num_classes), "num_classes", num_classes, "a whole number >= 1")
    check(pooling in POOLINGS, "pooling", pooling, f"one of {sorted(POOLINGS)}")
    check(0 <= dropout < 1, "dropout", dropout, "a rate in [0, 1)")
    check(
        len(input_shape) == 3 and input_shape[-1] == 3,
        "input_shape", input_shape, "(height, width, 3): RGB images",
    )  # fmt: skip
    channels = stem_channels
    for num_layers in blocks[:-1]:
        channels = math.floor(compression * (channels + num_layers * growth_rate))
        check(
            channels >= 1, "compression", compression,
            "a value that leaves each transition at least one channel",
        )  # fmt: skip
    smallest = smallest_input_size(len(blocks))
    for side in input_shape[:2]:
        check(
            side is None or side >= smallest, "input_shape", input_shape,
            f"images of at least {smallest}x{smallest} pixels for {len(blocks)} dense blocks "
            "(the stem and each transition halve the size)",
        )  # fmt: skip


def smallest_input_size(num_blocks):
    """The smallest side that leaves at least one pixel after the last transition."""
    size = 1
    while spatial_sizes(size, num_blocks)[-1] < 1:
        size += 1
    return size


def densenet121(**kwargs):
    """DenseNet-121: dense blocks of 6, 12, 24 and 16 layers (Table 1)."""
    kwargs.setdefault("name", "densenet121")
    return build_densenet(blocks=DENSENET121, **kwargs)


def densenet169(**kwargs):
    """DenseNet-169: dense blocks of 6, 12, 32 and 32 layers (Table 1)."""
    kwargs.setdefault("name", "densenet169")
    return build_densenet(blocks=DENSENET169, **kwargs)


def densenet201(**kwargs):
    """DenseNet-201: dense blocks of 6, 12, 48 and 32 layers (Table 1)."""
    kwargs.setdefault("name", "densenet201")
    return build_densenet(blocks=DENSENET201, **kwargs)


def densenet264(**kwargs):
    """DenseNet-264: dense blocks of 6, 12, 64 and 48 layers (Table 1)."""
    kwargs.setdefault("name", "densenet264")
    return build_densenet(blocks=DENSENET264, **kwargs)
