"""Small feature networks for the built-in data (no download): metric extractors for CPU runs.

``MnistLeNet`` (``name='mnist_lenet'``): 64-d features of a LeNet-like digit classifier, weights in this package;
inject it with ``callbacks.metrics.feature_extractor={_target_: stylegan.metrics.judges.MnistLeNet}`` (or
``metrics=cpu``). Its values are ``fd..@mnist_lenet`` / ``kd..@mnist_lenet`` / ``class_acc..@mnist_lenet``, never FID.
"""

from .lenet import MnistLeNet

__all__ = ["MnistLeNet"]
