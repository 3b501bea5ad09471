"""Metric names: the official ones parse to the official counts; other networks never report 'fid'/'kid'."""

from __future__ import annotations

import pytest

from stylegan.metrics import MetricSetupError, parse_metric, parse_metrics


@pytest.mark.parametrize(("name", "kind", "num_gen", "num_real"), [
    ("fid50k_full", "fid", 50_000, None),
    ("fid50k", "fid", 50_000, 50_000),
    ("kid50k_full", "kid", 50_000, 1_000_000),
    ("pr50k3_full", "pr", 50_000, 200_000),
    ("fid2k", "fid", 2_000, 2_000),
    ("fid0.5k_full", "fid", 500, None),
    ("kid200", "kid", 200, 200),
    ("ppl2_wend", "ppl", 50_000, None),
    ("ppl2_wend_1k", "ppl", 1_000, None),
])
def test_official_and_quick_names_parse_to_their_counts(name, kind, num_gen, num_real):
    spec = parse_metric(name)
    assert (spec.kind, spec.num_gen, spec.num_real) == (kind, num_gen, num_real)


def test_ppl_variants_follow_the_official_definitions():
    paper = parse_metric("ppl2_wend")
    assert (paper.space, paper.sampling, paper.crop, paper.epsilon) == ("w", "end", False, 1e-4)
    v1 = parse_metric("ppl_zfull")
    assert (v1.space, v1.sampling, v1.crop) == ("z", "full", True)
    assert parse_metric("pr50k3_full").k == 3 and parse_metric("pr0.2k10").k == 10


@pytest.mark.parametrize("bad", ["is50k", "fid", "fid50k_ful", "pr50k", "fid1", "fid0.0005k", "ppl2_wmid", "FID50k"])
def test_unknown_names_are_one_line_listing_the_forms(bad):
    with pytest.raises(MetricSetupError) as e:
        parse_metric(bad)
    msg = str(e.value)
    assert "\n" not in msg and repr(bad) in msg


def test_unknown_name_message_lists_valid_forms():
    with pytest.raises(MetricSetupError, match=r"valid forms: fid\{N\}\[_full\], kid"):
        parse_metric("is50k")
    with pytest.raises(MetricSetupError, match="listed twice"):
        parse_metrics(["fid2k", "fid2k"])


def test_reported_names_say_which_network_produced_them():
    fid, kid, pr, ppl = parse_metrics(["fid2k_full", "kid2k", "pr50k3_full", "ppl2_wend"])
    assert fid.keys("inception-v3-compat", True) == ["fid2k_full"]
    assert pr.keys("vgg16-fc2", True) == ["pr50k3_full_precision", "pr50k3_full_recall"]
    other = [k for s in (fid, kid, pr, ppl) for k in s.keys("digitnet", False)]
    assert other == ["fd2k_full@digitnet", "kd2k@digitnet", "pr50k3_full_precision@digitnet",
                     "pr50k3_full_recall@digitnet", "ppl2_wend@digitnet"]
    assert not any("fid" in k or "kid" in k for k in other)
