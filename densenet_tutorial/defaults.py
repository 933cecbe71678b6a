"""The sizes of a training run, written once, in a module that imports nothing.

``training`` trains with them (``training.QUICK`` is this ``QUICK``) and the command line
shows them in its help, which must not wait seconds for TensorFlow to start.

- ``FULL``: the real run, DenseNet-169 (the paper's Table 1, k = 32) at 224 px, 40 epochs;
- ``QUICK``: quick mode (``--quick``, ``QUICK = True`` in the notebooks), a small DenseNet on
  small images for a few short epochs: minutes on a 2-vCPU CPU, every step of the real run.
"""

BATCH_SIZE = 32  # images per replica (per GPU); 7.1 GB at 224 px in float32 on a CPU
EPOCHS = 40
SEED = 42

FULL = {"blocks": (6, 12, 32, 32), "growth_rate": 32, "image_size": 224, "epochs": EPOCHS}
QUICK = {"blocks": (2, 4, 4, 2), "growth_rate": 12, "image_size": 64, "epochs": 5}
QUICK_STEPS_PER_EPOCH = 40  # quick mode also caps the training steps of each epoch
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
