"""Recompute, in the backward pass, what a part of the network computed: memory for compute.

Pleiss et al. (2017, arXiv 1707.06990): a dense layer's input is the concatenation of all
earlier maps of its block (Eq. 2); storing that concatenation and its BN-ReLU output for
every layer makes training memory grow quadratically with depth. ``Recomputed`` wraps a small
Keras model (in ``model.memory_efficient_dense_block``: a dense layer's concatenation and
bottleneck) so that only its inputs are kept for the backward pass, and everything inside it
is computed again when the gradient needs it; memory then grows linearly, for some extra
compute. ``build_densenet(memory_efficient=True)`` switches to that block, like torchvision's
``memory_efficient``: same layer names, same weights, same outputs and gradients.

This module knows nothing of DenseNets: ``model`` uses it, never the other way round.
"""

import keras
from keras import layers


@keras.saving.register_keras_serializable(package="densenet_tutorial")
class Recomputed(layers.Layer):
    """The Keras model ``inner``, run so that its activations are recomputed, not stored.

    In inference it is simply ``inner``. Its layers keep their names (``conv2_block1_0_bn``
    ...) and are listed by ``layers``, as a nested model's are.
    """

    def __init__(self, inner, **kwargs):
        super().__init__(**kwargs)
        self.inner = inner

    def call(self, inputs, training=None):
        if not training:
            return self.inner(inputs, training=training)
        return recompute_in_backward(self.inner, list(inputs))

    @property
    def layers(self):
        """The layers recomputed here, as ``Model.layers``."""
        return self.inner.layers

    def compute_output_shape(self, input_shape):
        return self.inner.compute_output_shape(input_shape)

    def get_config(self):
        return {**super().get_config(), "inner": keras.saving.serialize_keras_object(self.inner)}

    @classmethod
    def from_config(cls, config):
        config["inner"] = keras.saving.deserialize_keras_object(config["inner"])
        return cls(**config)


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
