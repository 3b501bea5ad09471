"""Feature extractors and perceptual distances behind the metrics, and batched extraction with a progress bar.

A :class:`FeatureExtractor` maps uint8 images ``[N, 3, H, W]`` (0..255, as the official metrics feed the
detectors) to float features ``[N, D]``; it has a ``name`` and a ``feature_dim``. A :class:`PerceptualDistance`
maps two float image batches in [0, 255] to a distance per pair (for PPL). Both are plain ``nn.Module``s, so any
module with those attributes can be injected (the tests inject tiny ones).

The standard ones come from torch-fidelity (the ``[metrics]`` extra), imported only inside the builders:

* ``inception``: the 2015-12-05 TF InceptionV3 graph ported by torch-fidelity ('inception-v3-compat'), pool3
  features (2048-d), with TF1-exact bilinear resize to 299 (FID: Heusel et al. 2017; KID: Binkowski et al. 2018).
* ``vgg16``: VGG16 ``fc2_relu`` features (4096-d), torch-fidelity's choice for precision/recall
  (Kynkaanniemi et al. 2019 use VGG16 fc2).
* ``lpips``: LPIPS-VGG16 (Zhang et al. 2018), the distance of the paper's perceptual path length.

Only builders here set ``standard`` on what they return; the metric names reserve 'fid'/'kid' etc. for those.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from ..utils.images import quantize

INCEPTION_NAME = "inception-v3-compat"
VGG16_NAME = "vgg16-fc2"
LPIPS_NAME = "lpips-vgg16"
INSTALL_HINT = "pip install -e '.[metrics]' (torch-fidelity)"


class MetricSetupError(RuntimeError):
    """A metric cannot run (missing package, weights or bad metric config); the message is one line."""


class FeatureExtractor(nn.Module):
    """uint8 ``[N, 3, H, W]`` -> float ``[N, feature_dim]``. ``standard`` is True only for the official detectors
    built by :func:`build_extractor`."""

    name: str = "features"
    feature_dim: int = 0
    standard: bool = False


class PerceptualDistance(nn.Module):
    """Two float batches ``[N, 3, H, W]`` in [0, 255] -> ``[N]`` distances. ``standard``: LPIPS-VGG16."""

    name: str = "distance"
    standard: bool = False


def to_rgb_uint8(images: torch.Tensor) -> torch.Tensor:
    """Generator output in [-1, 1] to uint8 RGB ``[N, 3, H, W]`` (the official quantization,
    :func:`stylegan.utils.images.quantize`); a gray channel is repeated to three."""
    out = quantize(images)
    return out.repeat(1, 3, 1, 1) if out.shape[1] == 1 else out


def _import_fidelity(what: str):
    try:
        return importlib.import_module(f"torch_fidelity.{what}")
    except ImportError as e:
        raise MetricSetupError(
            f"the standard metric networks need torch-fidelity, which is not importable ({e}): {INSTALL_HINT}, "
            "or train without metrics (metrics=none)"
        ) from None


def _check_weights_path(weights_path: str | None, key: str) -> str | None:
    if weights_path is None:
        return None
    path = Path(weights_path).expanduser()
    if not path.is_file():
        raise MetricSetupError(f"{key}={weights_path} does not exist (resolved to {path.resolve()}); "
                               f"fix the path or set {key}=null to download the weights")
    return str(path)


def _download_error(what: str, err: Exception, key: str) -> MetricSetupError:
    first = str(err).splitlines()[0] if str(err) else type(err).__name__
    return MetricSetupError(f"could not load the {what} weights ({first}); offline? download them once and set "
                            f"{key}=/path/to/weights.pth")


class _FidelityFeatures(FeatureExtractor):
    """A torch-fidelity feature extractor returning one of its feature layers."""

    def __init__(self, net: nn.Module, name: str, feature_dim: int) -> None:
        super().__init__()
        self.net, self.name, self.feature_dim, self.standard = net, name, feature_dim, True

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        (features,) = self.net(images)
        return features


# kind -> (torch-fidelity module, class, name, feature layer, feature dim, label in errors)
_FIDELITY_EXTRACTORS = {
    "inception": ("feature_extractor_inceptionv3", "FeatureExtractorInceptionV3", INCEPTION_NAME, "2048", 2048,
                  "InceptionV3"),
    "vgg16": ("feature_extractor_vgg16", "FeatureExtractorVGG16", VGG16_NAME, "fc2_relu", 4096, "VGG16"),
}
KINDS = tuple(_FIDELITY_EXTRACTORS)


def build_extractor(
    kind: str, weights_path: str | None = None, key: str = "metrics.feature_extractor_weights_path"
) -> FeatureExtractor:
    """``inception`` (FID/KID) or ``vgg16`` (precision/recall) from torch-fidelity; ``weights_path``: a local
    ``.pth`` for offline machines (else torch-fidelity downloads). Raises :class:`MetricSetupError`."""
    if kind not in KINDS:
        raise MetricSetupError(f"unknown feature extractor {kind!r}: use one of {KINDS} or a module (_target_)")
    path = _check_weights_path(weights_path, key)
    module_name, class_name, name, layer, dim, label = _FIDELITY_EXTRACTORS[kind]
    module = _import_fidelity(module_name)
    try:
        net = getattr(module, class_name)(name, [layer], feature_extractor_weights_path=path)
    except (OSError, RuntimeError, ValueError) as e:
        raise _download_error(label, e, key) from None
    return _FidelityFeatures(net, name, dim).eval()


class _FidelityLPIPS(PerceptualDistance):
    """LPIPS-VGG16 on float inputs: torch-fidelity's module asserts uint8 in ``forward``, but PPL's images differ
    by ~1e-4 and must not be quantized, so this runs its normalisation, VGG16 slices and linear heads on floats."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net, self.name, self.standard = net, LPIPS_NAME, True

    def forward(self, img0: torch.Tensor, img1: torch.Tensor) -> torch.Tensor:
        lp = self.net
        f0, f1 = lp.net(lp.normalize(img0)), lp.net(lp.normalize(img1))
        total = 0
        for layer, a, b in zip(lp.lins, f0, f1, strict=True):
            a = a / (a.square().sum(1, keepdim=True).sqrt() + 1e-10)
            b = b / (b.square().sum(1, keepdim=True).sqrt() + 1e-10)
            total = total + layer.model((a - b).square()).mean([2, 3]).flatten(1).sum(1)
        return total


def build_lpips() -> PerceptualDistance:
    """LPIPS-VGG16 from torch-fidelity. Its weights come through torch.hub: offline, put ``vgg16-397923af.pth``
    and ``weights-vgg16-lpips.pth`` in ``torch.hub.get_dir()/checkpoints``."""
    module = _import_fidelity("sample_similarity_lpips")
    try:
        net = module.SampleSimilarityLPIPS("lpips-vgg16", sample_similarity_resize=None)
    except (OSError, RuntimeError, ValueError) as e:
        hub = Path(torch.hub.get_dir()) / "checkpoints"
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise MetricSetupError(f"could not load the LPIPS-VGG16 weights ({first}); offline? put vgg16-397923af.pth "
                               f"and weights-vgg16-lpips.pth in {hub}") from None
    return _FidelityLPIPS(net).eval()


def resolve_extractor(spec: str | nn.Module, weights_path: str | None, key: str) -> FeatureExtractor:
    """A configured extractor: a kind name for :func:`build_extractor`, or a ready module (checked)."""
    if isinstance(spec, str):
        return build_extractor(spec, weights_path, key)
    if not isinstance(spec, nn.Module) or not getattr(spec, "name", None) or not getattr(spec, "feature_dim", 0):
        raise MetricSetupError(f"feature extractor {spec!r} must be 'inception', 'vgg16' or an nn.Module with "
                               "'name' and 'feature_dim'")
    return spec.eval()


def resolve_distance(spec: str | nn.Module) -> PerceptualDistance:
    if isinstance(spec, str):
        if spec != "lpips":
            raise MetricSetupError(f"unknown PPL distance {spec!r}: use 'lpips' or a module (_target_)")
        return build_lpips()
    if not isinstance(spec, nn.Module) or not getattr(spec, "name", None):
        raise MetricSetupError(f"PPL distance {spec!r} must be 'lpips' or an nn.Module with a 'name'")
    return spec.eval()


def standard(module: nn.Module) -> bool:
    return bool(getattr(module, "standard", False))


@torch.no_grad()
def extract_features(
    extractor: nn.Module, batches: Iterable[torch.Tensor], total: int | None = None, desc: str = "features",
    progress: bool = True, device: torch.device | str | None = None,
) -> torch.Tensor:
    """Run ``extractor`` over float [-1, 1] image batches; float32 features ``[N, D]`` on the CPU. The bar
    counts images and shows images/s."""
    device = torch.device(device) if device is not None else next(extractor.parameters(), torch.empty(0)).device
    out: list[torch.Tensor] = []
    start = time.perf_counter()
    with tqdm(total=total, desc=desc, unit="img", disable=not progress, dynamic_ncols=True, leave=False) as bar:
        for batch in batches:
            out.append(extractor(to_rgb_uint8(batch.to(device))).to("cpu", torch.float32))
            bar.update(len(batch))
    if progress and out:
        n = sum(len(x) for x in out)
        bar.write(f"{desc}: {n} images, {n / max(time.perf_counter() - start, 1e-9):.1f} img/s")
    return torch.cat(out) if out else torch.empty(0, int(getattr(extractor, "feature_dim", 0)))
