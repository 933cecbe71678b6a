"""DenseNet built from Keras layers (Huang et al., "Densely Connected Convolutional Networks").

One short function per idea of the paper (section numbers refer to arXiv 1608.06993v5):

- ``composite_function``: H(.) = BN -> ReLU -> Conv, the pre-activation unit (Sec. 3);
- ``bottleneck_layer``: one dense layer of DenseNet-B, 1x1 conv to ``bottleneck_width * k``
  channels, then 3x3 conv to ``k`` new channels (Sec. 3, "Bottleneck layers");
- ``dense_block``: layer l sees the concatenation of all earlier feature maps (Eq. 2);
- ``transition_layer``: BN-ReLU-Conv1x1 to ``floor(compression * m)`` channels, then 2x2
  average pooling (Sec. 3, "Pooling layers" and "Compression");
- ``stem`` and ``head``: the ImageNet entry (7x7 conv, 3x3 max pool) and exit (Table 1);
- ``build_densenet``: the whole network; ``densenet121`` ... ``densenet264`` are presets.

Layer names are those of ``keras.applications.densenet``, so any name found in the Keras
documentation (``conv3_block7_concat``, ``pool4_conv``, the final ``relu``) exists here too.
The module knows nothing of files, labels or training.
"""

import math
import re

import keras
from keras import layers

BN_EPSILON = 1.001e-5  # as keras.applications.densenet
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # the "torch" preprocessing of keras.applications.densenet
IMAGENET_STD = (0.229, 0.224, 0.225)
POOLINGS = {"avg": layers.GlobalAveragePooling2D, "max": layers.GlobalMaxPooling2D}


def composite_function(x, filters, kernel_size, bn_name, relu_name, conv_name):
    """H(.) of Sec. 3: batch normalization, then ReLU, then a convolution without bias."""
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=bn_name)(x)
    x = layers.Activation("relu", name=relu_name)(x)
    return layers.Conv2D(filters, kernel_size, padding="same", use_bias=False, name=conv_name)(x)


def bottleneck(x, growth_rate, bottleneck_width, name):
    """The bottleneck of DenseNet-B (Sec. 3): BN-ReLU-Conv(1x1) to ``bottleneck_width * k``."""
    width = bottleneck_width * growth_rate
    return composite_function(x, width, 1, f"{name}_0_bn", f"{name}_0_relu", f"{name}_1_conv")


def bottleneck_layer(x, growth_rate, bottleneck_width, name, memory_efficient=False):
    """One dense layer (Sec. 3): the bottleneck, then BN-ReLU-Conv(3x3) to ``k`` new maps.

    ``x`` is the concatenation of all earlier feature maps of the block (Eq. 2). With
    ``memory_efficient`` it is instead the list of those maps: the concatenation and the
    bottleneck are then recomputed in the backward pass, not stored (Pleiss et al., 2017).
    Returns only the ``growth_rate`` new maps.
    """
    if memory_efficient:
        x = RecomputedBottleneck(growth_rate, bottleneck_width, name)(x)
    else:
        x = bottleneck(x, growth_rate, bottleneck_width, name)
    return composite_function(x, growth_rate, 3, f"{name}_1_bn", f"{name}_1_relu", f"{name}_2_conv")


def dense_block(x, num_layers, growth_rate, bottleneck_width, name, memory_efficient=False):
    """A dense block (Sec. 3, Fig. 1): each layer adds ``growth_rate`` maps to the stack.

    Layer i sees ``[x0, x1, ..., x_{i-1}]`` (Eq. 2), built as a chain of concatenations,
    each the previous one plus the newest maps, as keras.applications does. The
    memory-efficient block keeps the list of maps and concatenates it once at the end.
    """
    if memory_efficient:
        features = [x]
        for i in range(1, num_layers + 1):
            features.append(
                bottleneck_layer(features, growth_rate, bottleneck_width, f"{name}_block{i}", True)
            )
        return layers.Concatenate(name=f"{name}_block{num_layers}_concat")(features)
    for i in range(1, num_layers + 1):
        new_maps = bottleneck_layer(x, growth_rate, bottleneck_width, f"{name}_block{i}")
        x = layers.Concatenate(name=f"{name}_block{i}_concat")([x, new_maps])
    return x


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
    blocks=(6, 12, 32, 32),
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
    """
    blocks = tuple(blocks)
    stem_channels = 2 * growth_rate if stem_channels is None else stem_channels
    validate_config(
        blocks, growth_rate, compression, bottleneck_width, stem_channels, input_shape,
        num_classes, pooling, dropout,
    )  # fmt: skip
    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.Normalization(
        mean=[255 * m for m in IMAGENET_MEAN],
        variance=[(255 * s) ** 2 for s in IMAGENET_STD],
        name="normalize",
    )(inputs)
    x = stem(x, stem_channels)
    for b, num_layers in enumerate(blocks, start=2):
        x = dense_block(x, num_layers, growth_rate, bottleneck_width, f"conv{b}", memory_efficient)
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
    """Raise ``ValueError`` naming the parameter, its value and what is allowed."""

    def check(ok, parameter, value, allowed):
        if not ok:
            raise ValueError(f"{parameter}={value!r} is not allowed: {allowed}.")

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


def _preset(blocks, depth_name):
    def preset(**kwargs):
        kwargs.setdefault("name", depth_name)
        return build_densenet(blocks=blocks, **kwargs)

    preset.__name__ = depth_name
    preset.__doc__ = f"{depth_name.capitalize()}: dense blocks of {blocks} layers (Table 1)."
    return preset


densenet121 = _preset((6, 12, 24, 16), "densenet121")
densenet169 = _preset((6, 12, 32, 32), "densenet169")
densenet201 = _preset((6, 12, 48, 32), "densenet201")
densenet264 = _preset((6, 12, 64, 48), "densenet264")


@keras.saving.register_keras_serializable(package="densenet_tutorial")
class RecomputedBottleneck(layers.Layer):
    """Concatenation + bottleneck of one dense layer, recomputed in the backward pass.

    Pleiss et al. (2017, arXiv 1707.06990): storing the concatenated inputs and their
    BN-ReLU outputs of every layer makes training memory grow quadratically with depth;
    recomputing them from the stored k-channel feature maps makes it linear. The layers
    inside keep their Keras names (``conv2_block1_0_bn`` ...); ``memory_efficient=True``
    in ``build_densenet`` swaps this in, same weights, same outputs, same gradients.
    """

    def __init__(self, growth_rate, bottleneck_width, block_name, **kwargs):
        kwargs.setdefault("name", f"{block_name}_bottleneck")
        super().__init__(**kwargs)
        self.growth_rate = growth_rate
        self.bottleneck_width = bottleneck_width
        self.block_name = block_name
        self.inner = None

    def build(self, input_shape):
        inputs = [keras.Input(shape=shape[1:], dtype=self.compute_dtype) for shape in input_shape]
        x = layers.Concatenate(name=f"{self.block_name}_input")(inputs)  # Eq. 2
        outputs = bottleneck(x, self.growth_rate, self.bottleneck_width, self.block_name)
        self.inner = keras.Model(inputs, outputs, name=f"{self.block_name}_inner")

    def call(self, features, training=None):
        if not training:
            return self.inner(features, training=training)
        return recompute_in_backward(self.inner, list(features))

    def compute_output_shape(self, input_shape):
        return (*input_shape[0][:-1], self.bottleneck_width * self.growth_rate)

    def get_config(self):
        config = super().get_config()
        config.update(
            growth_rate=self.growth_rate,
            bottleneck_width=self.bottleneck_width,
            block_name=self.block_name,
        )
        return config


def recompute_in_backward(block, inputs):
    """Run ``block`` (training mode), keeping only ``inputs`` for the backward pass.

    Like ``keras.remat``/``tf.recompute_grad``, with two differences that matter for a
    DenseNet: the recomputation runs in a ``keras.StatelessScope`` so BatchNormalization
    moving statistics are updated once per step (not twice), and it waits for the
    incoming gradient so TensorFlow's graph optimiser cannot merge it back into the
    forward pass (which would store everything again).
    """
    import tensorflow as tf

    @tf.custom_gradient
    def forward(*xs):
        y = block(list(xs), training=True)

        def backward(dy, variables=None):
            with tf.control_dependencies([dy]):
                replay = [tf.identity(x) for x in xs]
            with tf.GradientTape() as tape:
                tape.watch(replay)
                with keras.StatelessScope():
                    y_again = block(replay, training=True)
            grads = tape.gradient(y_again, replay + list(variables or []), output_gradients=dy)
            return grads[: len(xs)], grads[len(xs) :]

        return y, backward

    return forward(*inputs)


def architecture_table(model):
    """Per stage of a DenseNet built here: input/output channels, output size, parameters.

    Stages are found by layer name: ``conv1``/``pool1`` (stem), ``conv{b}`` (dense block b),
    ``pool{b}`` (transition b), and the rest (head). Nested layers count toward their stage.
    """
    rows = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        stage = _stage_of(layer.name)
        row = rows.setdefault(stage, {"stage": stage, "input_channels": None, "params": 0})
        if row["input_channels"] is None and stage != "input":
            row["input_channels"] = _channels(layer.input)
        shape = layer.output.shape
        row["output_channels"] = shape[-1]
        row["output_size"] = tuple(shape[1:-1])
        row["params"] += layer.count_params()
    return [row for stage, row in rows.items() if stage != "input"]


def _stage_of(layer_name):
    match = re.match(r"(conv|pool)(\d+)_", layer_name + "_")
    if match is None:
        return "input" if layer_name == "normalize" else "head"
    kind, number = match.groups()
    if number == "1":
        return "stem"
    return f"dense block {int(number) - 1}" if kind == "conv" else f"transition {int(number) - 1}"


def _channels(tensors):
    tensors = tensors if isinstance(tensors, (list, tuple)) else [tensors]
    return sum(t.shape[-1] for t in tensors)


def format_architecture(model):
    """``architecture_table`` as aligned text, with the total parameter count."""
    lines = [f"{'stage':<14}{'in ch':>7}{'out ch':>8}{'size':>10}{'params':>13}"]
    for row in architecture_table(model):
        size = "x".join(str(s) for s in row["output_size"]) or "-"
        lines.append(
            f"{row['stage']:<14}{row['input_channels']:>7}{row['output_channels']:>8}"
            f"{size:>10}{row['params']:>13,}"
        )
    lines.append(f"{'total':<14}{'':>7}{'':>8}{'':>10}{model.count_params():>13,}")
    return "\n".join(lines)
