"""FID50k wall time with cached real statistics: generation + Inception features + statistics (issue 18).

Times what ``stylegan-evaluate metric_names=[fid50k_full]`` runs (``MetricRunner``), in this process: a first run
computes and caches the real statistics of a synthetic prepared dataset of the G's resolution (``--real`` smooth
random images), then ``--repeats`` timed runs find them in the cache and do the rest: ``--num`` generated images
(the paper256 G unless ``--experiment`` says otherwise: random init, or ``--ckpt``), their Inception pool3 features,
mean/covariance and the Frechet distance. Also timed alone: the generation of the same images (no extractor).

The Inception is torch-fidelity's (the ``[metrics]`` extra). Its weights cannot be downloaded on an offline machine:
``--weights PATH`` takes the real file; without it the network gets random weights of the same shape
(``fid_vs_torch_fidelity.random_inception_weights``), which costs the same time. ``--extractor MODULE:CLASS``
injects another feature extractor instead (e.g. ``metrics_testing:PixelFeatures`` from tests/ for a CPU smoke run).

Usage (from the repository root)::

    PYTHONPATH=src python benchmarks/fid_speed.py --device cuda --batch 256
    PYTHONPATH=src:tests python benchmarks/fid_speed.py --device cpu --num 512 --real 256 \
        --extractor metrics_testing:PixelFeatures --set model.generator.channel_base=1024 data.resolution=32
"""

from __future__ import annotations

import argparse
import importlib
import json
import tempfile
import time
from pathlib import Path

import torch
from hydra.utils import instantiate

from stylegan.evaluate import load_generator
from stylegan.metrics.generate import LabelSampler, generated_batches
from stylegan.metrics.runner import MetricRunner, Networks
from stylegan.utils.resolvers import register as register_resolvers
from timing import synchronize  # benchmarks/ (the script's folder)
from train_throughput import Case, compose_config, synthetic_dataset


def extractor(args, tmp: Path) -> torch.nn.Module:
    if args.extractor:
        module, cls = args.extractor.split(":")
        return getattr(importlib.import_module(module), cls)()
    from stylegan.metrics.extractors import build_extractor

    weights = args.weights
    if weights is None:
        from fid_vs_torch_fidelity import random_inception_weights

        weights = str(random_inception_weights(tmp / "inception-random.pth"))
    return build_extractor("inception", weights)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--experiment", default="paper256", help="the G's preset (conf/experiment)")
    p.add_argument("--set", nargs="*", default=[], help="extra Hydra overrides, e.g. data.resolution=32")
    p.add_argument("--ckpt", help="a checkpoint or official weights for G (default: the preset's G, random init)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    p.add_argument("--num", type=int, default=50_000, help="generated images (FID50k: 50000)")
    p.add_argument("--real", type=int, default=2000, help="images in the synthetic real dataset")
    p.add_argument("--batch", type=int, default=64, help="images per generator / extractor call")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--weights", help="the real Inception weights (.pth); default: random ones of the same shape")
    p.add_argument("--extractor", help="MODULE:CLASS of another feature extractor (a CPU smoke run)")
    p.add_argument("--json", help="write the figures here")
    args = p.parse_args(argv)
    register_resolvers()
    cfg = compose_config(Case(args.experiment, args.experiment), args.set, args.device, "32-true")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cfg.data.source = str(synthetic_dataset(tmp, int(cfg.data.resolution), int(cfg.data.channels), args.real))
        dm = instantiate(cfg.data)
        dm.setup()
        G = load_generator(args.ckpt)[0] if args.ckpt else instantiate(cfg.model.generator)
        G = G.eval().requires_grad_(False).to(args.device)
        net = extractor(args, tmp)
        metric = f"fid{args.num // 1000}k_full" if args.num % 1000 == 0 else f"fid{args.num}_full"
        runner = MetricRunner([metric], Networks(features=net), str(tmp / "cache"), batch_size=args.batch,
                              progress=False)
        t = time.perf_counter()
        runner.run(G, dm, args.device)  # fills the real-statistics cache
        cold = time.perf_counter() - t
        rows = []
        for _ in range(args.repeats):
            runner = MetricRunner([metric], Networks(features=net), str(tmp / "cache"), batch_size=args.batch,
                                  progress=False)  # a new runner: the statistics come from the disk cache
            synchronize(args.device)
            t = time.perf_counter()
            value = runner.run(G, dm, args.device)
            synchronize(args.device)
            warm = time.perf_counter() - t
            assert runner.extraction_calls == 0, "the real statistics were not taken from the cache"
            t = time.perf_counter()
            with torch.no_grad():
                for _img in generated_batches(G, args.num, args.batch, 0, LabelSampler(None, G.c_dim),
                                              torch.device(args.device)):
                    pass
            synchronize(args.device)
            rows.append({"metric_s": warm, "generation_s": time.perf_counter() - t, "value": value})
    dev = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"{time.strftime('%Y-%m-%d %H:%M')}, {dev}, torch {torch.__version__}: {metric}, G {args.experiment} "
          f"{G.img_resolution}px, batch {args.batch}, extractor {net.name}, first run (real statistics) {cold:.1f} s")
    print("| repeat | metric s (cached real stats) | generation alone s | img/s (metric) |\n|---|---|---|---|")
    for i, r in enumerate(rows):
        print(f"| {i + 1} | {r['metric_s']:.1f} | {r['generation_s']:.1f} | {args.num / r['metric_s']:.0f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": dev, "metric": metric, "cold_s": cold, "rows": rows},
                                              indent=1))


if __name__ == "__main__":
    main()
