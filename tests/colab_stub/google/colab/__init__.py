"""A stand-in for Google Colab's ``google.colab`` package, for the tests' "runtimes".

Colab imports ``google.colab`` when a kernel starts; the tests put this folder on
``PYTHONPATH`` and import it from an IPython start-up file, so the notebooks take their
Colab branch. Only what the project calls is here: ``drive.mount`` and ``files.upload``.
"""
