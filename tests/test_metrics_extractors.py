"""Extractor setup errors (one line, what to install / which path to set), uint8 conversion, extraction."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from metrics_testing import PixelFeatures
from stylegan.data.stream import to_float
from stylegan.metrics import MetricSetupError, build_extractor, build_lpips
from stylegan.metrics.extractors import extract_features, resolve_extractor, to_rgb_uint8
from stylegan.metrics.names import parse_metrics
from stylegan.metrics.runner import build_networks


@pytest.fixture()
def no_fidelity(monkeypatch):
    """torch-fidelity absent, whatever is installed: a None entry in sys.modules makes its import fail."""
    for name in [m for m in sys.modules if m.startswith("torch_fidelity")]:
        monkeypatch.delitem(sys.modules, name)
    for name in ("torch_fidelity", "torch_fidelity.feature_extractor_inceptionv3",
                 "torch_fidelity.feature_extractor_vgg16", "torch_fidelity.sample_similarity_lpips"):
        monkeypatch.setitem(sys.modules, name, None)


@pytest.mark.parametrize("build", [lambda: build_extractor("inception"), lambda: build_extractor("vgg16"),
                                   build_lpips])
def test_missing_torch_fidelity_is_one_line_saying_what_to_install(no_fidelity, build):
    with pytest.raises(MetricSetupError) as e:
        build()
    msg = str(e.value)
    assert "\n" not in msg and "pip install -e '.[metrics]'" in msg and "torch-fidelity" in msg


def test_standard_metrics_fail_at_network_building_not_later(no_fidelity):
    """The callback and evaluate build networks first: the paper's metrics stop there with the install hint."""
    with pytest.raises(MetricSetupError, match="torch-fidelity"):
        build_networks(parse_metrics(["fid50k_full", "pr50k3_full", "ppl2_wend"]))
    # with a test extractor for FID and nothing else requested, nothing from torch-fidelity is needed
    nets = build_networks(parse_metrics(["fid2k"]), feature_extractor=PixelFeatures())
    assert nets.features.name == "pixproj" and nets.pr is None and nets.distance is None


def test_missing_weights_file_names_the_path_and_key(tmp_path):
    missing = tmp_path / "inception.pth"
    with pytest.raises(MetricSetupError) as e:
        build_extractor("inception", str(missing))
    msg = str(e.value)
    assert "\n" not in msg and str(missing) in msg and "metrics.feature_extractor_weights_path" in msg


def test_unknown_kind_and_bad_modules_are_rejected():
    with pytest.raises(MetricSetupError, match="unknown feature extractor 'resnet'"):
        build_extractor("resnet")
    with pytest.raises(MetricSetupError, match="'name' and 'feature_dim'"):
        resolve_extractor(torch.nn.Identity(), None, "k")


def test_uint8_conversion_inverts_the_data_pipeline_exactly():
    """Reals: uint8 -> data's float [-1, 1] -> to_rgb_uint8 is the identity on all 256 values; gray -> RGB."""
    values = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16)
    back = to_rgb_uint8(to_float(values))
    assert back.shape == (1, 3, 16, 16) and all(torch.equal(back[:, i : i + 1], values) for i in range(3))
    # generated images: (x * 127.5 + 128) clamped and truncated, as the official metrics
    x = torch.tensor([-2.0, -1.0, 0.0, 0.999, 1.0, 3.0]).reshape(1, 3, 2, 1)
    expected = np.clip(x.numpy() * 127.5 + 128, 0, 255).astype(np.uint8)
    assert np.array_equal(to_rgb_uint8(x).numpy(), expected)


def test_extraction_matches_one_call_and_reports_images_per_second(capsys):
    net = PixelFeatures()
    images = torch.rand(10, 1, 32, 32) * 2 - 1
    feats = extract_features(net, images.split(3), total=10, desc="test", progress=True)
    assert torch.allclose(feats, net(to_rgb_uint8(images)), atol=1e-6) and feats.shape == (10, 16)
    err = capsys.readouterr()
    assert "img/s" in err.out + err.err and "10 images" in err.out + err.err


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"metrics": []}, "is empty"),
    ({"metrics": ["fid2k"], "every_kimg": 0}, "every_kimg=0 must be > 0"),
    ({"metrics": ["fid2k"], "batch_size": 0}, "batch_size=0 must be"),
])
def test_callback_rejects_bad_settings_in_one_line(kwargs, message):
    from stylegan.metrics import MetricsCallback

    with pytest.raises(MetricSetupError, match=message):
        MetricsCallback(**kwargs)
