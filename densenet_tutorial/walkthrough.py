"""The ideas in a few bare lines, shown in the notebooks before the package's full versions.

- ``train_in_brief``: what ``training.train`` does, in a dozen lines (notebook 03): the
  datasets, the network with the augmentation in front, compiled under the distribution
  strategy, ``fit``, then the test split. ``train`` adds the run folder, the settings
  check, resuming, the best epoch's network, the precision, the time plan and the figures.
- ``plain_grad_cam``: Grad-CAM's four steps in eight lines (notebook 04). ``visualize.grad_cam``
  adds a float32 copy of a mixed-precision model, batches, any target class, the maps'
  resolution and errors that say what to do.

The tests check that each gives what the full version gives.
"""

import keras
import tensorflow as tf

from densenet_tutorial.data import augmentation, make_dataset, read_split
from densenet_tutorial.data.pipeline import training_epochs, training_steps
from densenet_tutorial.model import build_densenet
from densenet_tutorial.training import (
    SEED,
    AugmentedModel,
    compile_model,
    learning_rate_schedule,
    pick_strategy,
)


def train_in_brief(split_dir, blocks, growth_rate, image_size, batch_size, epochs, seed=SEED,
                   augment=None, steps_per_epoch=None, verbose=1):  # fmt: skip
    """Train a DenseNet on a split and measure it on the test images: ``(history, metrics)``.

    ``augment``: the augmentation layer (None: ``augmentation(seed)``, the one ``train``
    uses); ``steps_per_epoch`` caps the training steps of an epoch (quick mode). The training
    images come epoch after epoch, each epoch in the order its number and the seed give it
    (``training_epochs``), in full batches (``training_steps``), so ``fit`` is told how many
    steps make an epoch.
    """
    keras.utils.set_random_seed(seed)
    strategy = pick_strategy()  # one replica per GPU; a CPU is one replica
    global_batch = batch_size * strategy.num_replicas_in_sync  # each replica gets batch_size
    steps = training_steps(len(read_split(split_dir, "train")[1]), global_batch, steps_per_epoch)
    train = training_epochs(split_dir, range(epochs), image_size, global_batch, seed, steps)
    val = make_dataset(split_dir, "val", image_size, global_batch)
    test = make_dataset(split_dir, "test", image_size, global_batch)
    with strategy.scope():  # the variables are made on (mirrored to) every replica
        network = build_densenet(blocks, growth_rate, input_shape=(image_size, image_size, 3))
        model = AugmentedModel(network, augmentation(seed) if augment is None else augment)
        compile_model(model, learning_rate_schedule(global_batch, steps, epochs))
    history = model.fit(train, validation_data=val, epochs=epochs, steps_per_epoch=steps,
                        shuffle=False, verbose=verbose)  # fmt: skip
    return history.history, model.evaluate(test, return_dict=True, verbose=0)


def plain_grad_cam(model, images, layer_name="relu"):
    """Grad-CAM of each image's predicted class (Selvaraju et al. 2017), maps in [0, 1]."""
    probe = keras.Model(model.input, [model.get_layer(layer_name).output, model.output])
    with tf.GradientTape() as tape:
        features, logits = probe(tf.convert_to_tensor(images, tf.float32))  # 1. A and the logit
        score = tf.abs(logits[:, 0])  # 2. y, the predicted class's: +logit (dog), -logit (cat)
    gradients = tape.gradient(score, features)  # 2. dy/dA
    alpha = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)  # 3. Eq. 1
    cam = tf.nn.relu(tf.reduce_sum(alpha * features, axis=-1, keepdims=True))  # 4. Eq. 2
    cam = tf.image.resize(cam, tf.shape(images)[1:3])[..., 0]  # stretched over the image
    return (cam / tf.maximum(tf.reduce_max(cam, axis=(1, 2), keepdims=True), 1e-12)).numpy()
