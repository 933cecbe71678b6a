"""What several test modules share: stopping and watching a ``fit``, damaging a file as a
cut-off write leaves it, a small generated split, and the folder of the ``google.colab``
stand-in."""

import warnings
from pathlib import Path

import keras

COLAB_STUB = Path(__file__).parent / "colab_stub"  # the stand-in ``google.colab``


class StopAfter(keras.callbacks.Callback):
    """Ctrl-C (or a Colab disconnect) at the end of epoch ``epoch``, after the backup (a
    callback given to ``train`` comes after its own)."""

    def __init__(self, epoch=0):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt


class Record(keras.callbacks.Callback):
    """What a (resumed) ``fit`` runs: its epochs, and when it starts (after the training state
    was restored) the optimizer's step count and Keras's XLA decision."""

    def __init__(self):
        super().__init__()
        self.epochs = []  # a finished run does not call fit at all

    def on_train_begin(self, logs=None):
        self.start_step = int(self.model.optimizer.iterations)
        self.xla = self.model.jit_compile

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)


def second_half_zeros(path):
    """What an unsynced write on a network mount (Google Drive) can leave: the right length,
    zeros where its second half should be."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] + bytes(len(data) - len(data) // 2))


def small_split(base):
    """100 training, 20 validation and 20 test images, generated in ``base``; its data folder."""
    from densenet_tutorial.data import prepare, synthesize

    synthesize(base / "source", per_class=70, size=(96, 72))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "fewer than 25,000 images"
        prepare(source=base / "source", out=base / "data", val_per_class=10, test_per_class=10,
                progress=False, workers=1)  # fmt: skip
    return base / "data"
