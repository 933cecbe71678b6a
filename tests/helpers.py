"""What several test modules share: stopping and watching a ``fit``, damaging a file as a
cut-off write leaves it, and the folder of the ``google.colab`` stand-in."""

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
