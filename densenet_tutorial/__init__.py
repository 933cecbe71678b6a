"""DenseNet-169 from scratch on Cats vs Dogs (Huang et al., CVPR 2017, arXiv 1608.06993).

The package is laid out like the tutorial:

- ``densenet_tutorial.model``: the network, built from Keras layers;
- ``densenet_tutorial.data``: download, check, split, and a tf.data input pipeline;
- ``densenet_tutorial.training``: training and evaluation, joining model and data;
- ``densenet_tutorial.visualize``: feature maps and Grad-CAM for any Keras model;
- ``densenet_tutorial.cli``: ``python -m densenet_tutorial ...``, a thin face over the above.
"""

import os

# Keep TensorFlow's C++ start-up chatter (CUDA probing, CPU flags) out of learners' output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
