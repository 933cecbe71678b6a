"""Benchmarks of the tutorial's DenseNet and input pipeline, beside the package.

``python -m benchmarks`` (from the repository's root) compares, each as a ratio of two
figures measured in the same run: our DenseNet-169 against ``keras.applications``',
``memory_efficient=True`` against ``False``, float32 against the automatic precision, the
input pipeline against the one it replaced and against ``image_dataset_from_directory``,
the training step with the augmentation inside it against one without and against the
former augmentation (``legacy``), and growth rates 12, 24, 32. Every training figure times
the training model as ``fit`` runs it and says what it ran with.
``python -m benchmarks.data`` measures the file check and the pipeline alone. The figures,
the machine and what they mean are in ``docs/benchmarks.md``.
"""
