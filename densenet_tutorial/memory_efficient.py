"""The memory-efficient dense block: recompute, in the backward pass, what a layer reads.

Pleiss et al. (2017, arXiv 1707.06990): a dense layer's input is the concatenation of all
earlier maps of its block (Eq. 2); storing that concatenation and its BN-ReLU output for
every layer makes training memory grow quadratically with depth. Here the block keeps only
the list of k-channel maps, and each layer's concatenation and bottleneck (concat, BN, ReLU,
1x1 conv) are recomputed from that list when the gradient needs them, so memory grows
linearly. ``build_densenet(memory_efficient=True)`` uses ``dense_block`` from here instead of
``model.dense_block``, like torchvision's switch: same layer names, same weights, same
outputs and gradients, about half the tensor memory for some extra compute.
"""

import keras
from keras import layers

from densenet_tutorial import model


def dense_block(x, num_layers, growth_rate, bottleneck_width, name):
    """``model.dense_block`` that keeps the list of maps and concatenates it once at the end."""
    features = [x]
    for i in range(1, num_layers + 1):
        layer = f"{name}_block{i}"
        narrowed = RecomputedBottleneck(growth_rate, bottleneck_width, layer)(features)
        features.append(
            model.composite_function(
                narrowed, growth_rate, 3, f"{layer}_1_bn", f"{layer}_1_relu", f"{layer}_2_conv"
            )
        )
    return layers.Concatenate(name=f"{name}_block{num_layers}_concat")(features)


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
        outputs = model.bottleneck(x, self.growth_rate, self.bottleneck_width, self.block_name)
        self.inner = keras.Model(inputs, outputs, name=f"{self.block_name}_inner")

    def call(self, features, training=None):
        if not training:
            return self.inner(features, training=training)
        return recompute_in_backward(self.inner, list(features))

    @property
    def layers(self):
        """The layers recomputed here (concatenation, BN, ReLU, 1x1 conv), as ``Model.layers``."""
        return self.inner.layers

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
