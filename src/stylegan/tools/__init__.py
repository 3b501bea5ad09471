"""Using a trained generator: ``stylegan generate`` and ``stylegan export`` (see :mod:`stylegan.tools.__main__`)."""
