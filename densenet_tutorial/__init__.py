"""DenseNet-169 from scratch on Cats vs Dogs (Huang et al., CVPR 2017, arXiv 1608.06993).

The package is laid out like the tutorial:

- ``densenet_tutorial.model``: the network, built from Keras layers (``memory_efficient``:
  the recomputing dense block; ``architecture``: the stage table);
- ``densenet_tutorial.data``: download, check, split, a tf.data pipeline and the augmentation;
- ``densenet_tutorial.training`` and ``evaluate``: training and the test split, joining model
  and data (``config``: every setting of a run, quick mode's too, importing nothing;
  ``run_folder``: what a run keeps, and resuming it; ``checkpoints``: the training state);
- ``densenet_tutorial.visualize``: feature maps and Grad-CAM for any Keras model;
- ``densenet_tutorial.costs``: multiply-adds counted, time and memory measured;
- ``densenet_tutorial.cli``: ``python -m densenet_tutorial ...``, a thin face over the above;
- the plumbing of the notebooks: ``notebooks``, ``colab``, ``project``, ``hardware``,
  ``errors``, ``demo``.

The benchmarks live beside the package, in ``benchmarks/``.
"""

import os

# Keep TensorFlow's C++ start-up chatter (CUDA probing, CPU flags) out of learners' output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
