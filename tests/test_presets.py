"""The presets against the official recipes: stylegan2-ada-pytorch ``train.py`` cfg_specs (paper256/512/1024,
cifar, stylegan2) and NVlabs/stylegan2 ``run_training.py`` (Table 1 configs A-F, Table 2's config E grid), typed
in here from those files; and the sweep presets' parameters."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.types import RunMode

CONF = str(Path(__file__).resolve().parents[1] / "conf")

# official cfg_specs: reference GPU count (batch_gpu = mb // ref_gpus), global batch, minibatch-std group, fmaps, lr,
# gamma, ema kimg, ramp-up, mapping layers, kimg
OFFICIAL = {
    "stylegan2": dict(ref_gpus=8, mb=32, mbstd=4, fmaps=1, lrate=0.002, gamma=10, ema=10, ramp=None, map=8,
                      kimg=25000),
    "paper256": dict(ref_gpus=8, mb=64, mbstd=8, fmaps=0.5, lrate=0.0025, gamma=1, ema=20, ramp=None, map=8,
                     kimg=25000),
    "paper512": dict(ref_gpus=8, mb=64, mbstd=8, fmaps=1, lrate=0.0025, gamma=0.5, ema=20, ramp=None, map=8,
                     kimg=25000),
    "paper1024": dict(ref_gpus=8, mb=32, mbstd=4, fmaps=1, lrate=0.002, gamma=2, ema=10, ramp=None, map=8,
                      kimg=25000),
    "cifar": dict(ref_gpus=2, mb=64, mbstd=32, fmaps=1, lrate=0.0025, gamma=0.01, ema=500, ramp=0.05, map=2,
                  kimg=100000),
}
# run_training.py: (G arch, D arch, style, fmap_base (TF) -> channel_base = 2x, gamma, lazy, path length)
TABLE1 = {
    "config_a": ("orig", "orig", "stylegan1", 8 << 10, 10, False, 0),
    "config_b": ("orig", "orig", "demod", 8 << 10, 10, False, 0),
    "config_c": ("orig", "orig", "demod", 8 << 10, 10, True, 0),
    "config_d": ("orig", "orig", "demod", 8 << 10, 10, True, 2),
    "config_e": ("skip", "resnet", "demod", 8 << 10, 100, True, 2),
    "config_f": ("skip", "resnet", "demod", 16 << 10, 10, True, 2),
}
# run_training.py configs A-D: sched.lod_initial_resolution = 8, G/D_lrate_base 0.001 and G/D_lrate_dict (the
# schedule's lod_training_kimg / lod_transition_kimg defaults: 600 / 600)
GROWING = dict(start_resolution=8, training_kimg=600, transition_kimg=600,
               lrate_dict={128: 0.0015, 256: 0.002, 512: 0.003, 1024: 0.003}, lrate_base=0.001)


def _compose(overrides: list[str], hydra: bool = False):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose(config_name="train", overrides=overrides, return_hydra_config=hydra)


@pytest.mark.parametrize("name", sorted(OFFICIAL))
@pytest.mark.parametrize("devices", [1, 2, 8])
def test_official_presets(name, devices):
    spec = OFFICIAL[name]
    cfg = _compose([f"experiment={name}", "trainer=ddp_sim", f"trainer.devices={devices}"])
    g, d, m = cfg.model.generator, cfg.model.discriminator, cfg.model
    assert cfg.data.batch_size * devices == spec["mb"]  # the global batch, split over the devices
    # the official per-GPU rounds on any device count: ref_gpus devices run one round each, fewer accumulate
    assert m.batch_gpu == spec["mb"] // spec["ref_gpus"]
    rounds = max(cfg.data.batch_size // m.batch_gpu, 1)
    assert rounds == max(spec["ref_gpus"] // devices, 1) and m.batch_gpu % d.mbstd_group_size == 0
    assert d.mbstd_group_size == spec["mbstd"] and d.channel_base == g.channel_base == int(spec["fmaps"] * 32768)
    assert g.channel_max == 512 and g.mapping_kwargs.num_layers == spec["map"] and g.mapping_kwargs.w_avg_beta == 0.998
    assert m.optim.g_lr == m.optim.d_lr == spec["lrate"] and cfg.loss.r1_gamma == spec["gamma"]
    assert m.ema_kimg == spec["ema"] and m.ema_rampup == spec["ramp"] and cfg.total_kimg == spec["kimg"]
    cifar = name == "cifar"
    assert (cfg.loss.pl_weight == 0, cfg.loss.style_mixing_prob == 0, d.architecture == "orig") == (cifar,) * 3


def test_a_global_batch_that_does_not_split_is_refused():
    cfg = _compose(["experiment=paper1024", "trainer=ddp_sim", "trainer.devices=3"])
    with pytest.raises(Exception, match="global batch 32 does not split over 3 devices"):
        _ = cfg.data.batch_size


@pytest.mark.parametrize("name", sorted(TABLE1))
def test_table1_configs(name):
    g_arch, d_arch, style, fmap_base, gamma, lazy, pl = TABLE1[name]
    cfg = _compose([f"experiment={name}", "data.resolution=1024"])
    g, d = cfg.model.generator, cfg.model.discriminator
    assert (g.architecture, d.architecture, g.style_block) == (g_arch, d_arch, style)
    assert g.channel_base == d.channel_base == 2 * fmap_base  # TF fmap_base f at stage s = torch channel_base 2f
    assert (cfg.loss.r1_gamma, cfg.loss.lazy, cfg.loss.pl_weight) == (gamma, lazy, pl)
    assert cfg.loss.style_mixing_prob == 0.9 and cfg.data.batch_size == 32
    assert g.mapping_kwargs.w_avg_beta == 0.995  # G_style's and G_main's dlatent_avg_beta (PyTorch ports: 0.998)
    assert cfg.model.batch_gpu == 4  # sched.minibatch_gpu_base (per GPU at every resolution here; see rounds.py)
    assert d.get("downsampling", "fir") == ("blur_pool" if name == "config_a" else "fir")  # D_basic for config A
    grows = name in ("config_a", "config_b", "config_c", "config_d")
    m = cfg.model
    if g_arch == "orig":
        assert (g.progressive, d.progressive) == (grows, grows)
    if grows:
        p = m.progressive
        assert {k: p[k] for k in ("start_resolution", "training_kimg", "transition_kimg")} == {
            k: GROWING[k] for k in ("start_resolution", "training_kimg", "transition_kimg")}
        assert dict(p.g_lr) == dict(p.d_lr) == GROWING["lrate_dict"]
        assert m.optim.g_lr == m.optim.d_lr == GROWING["lrate_base"]
        assert p.reset_optimizer is True  # the official training_loop's reset_opt_for_new_lod default
        assert dict(p.batch_gpu) == {8: 32, 16: 16, 32: 8, 64: 4}  # sched.minibatch_gpu_dict
    else:
        assert m.progressive is None and m.optim.g_lr == m.optim.d_lr == 0.002


@pytest.mark.parametrize("name", sorted(TABLE1))
def test_scale_cpu_shrinks_any_preset_and_keeps_its_recipe(name):
    g_arch, d_arch, style, _, gamma, lazy, pl = TABLE1[name]
    cfg = _compose([f"experiment={name}", "scale=cpu"])
    g, d = cfg.model.generator, cfg.model.discriminator
    assert (g.z_dim, g.channel_base, g.channel_max, g.mapping_kwargs.num_layers, cfg.data.batch_size) == (
        32, 1024, 64, 2, 16)
    assert (g.architecture, d.architecture, g.style_block) == (g_arch, d_arch, style)
    assert (cfg.loss.r1_gamma, cfg.loss.lazy, cfg.loss.pl_weight) == (gamma, lazy, pl)
    assert cfg.model.batch_gpu is None  # one round: the GPU presets' rounds only bound GPU memory
    assert _compose(["experiment=tiny"]).model.generator.channel_base == 1024  # tiny = the default at scale=cpu


def _sweep_jobs(cfg) -> list[list[str]]:
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = [f"{k}={v}" for k, v in cfg.hydra.sweeper.params.items()]
    batches = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(params), None)
    return [job for batch in batches for job in batch]


def test_table2_preset_is_config_e_over_the_3x3_architectures():
    cfg = _compose(["ablation=table2"], hydra=True)
    assert cfg.hydra.mode == RunMode.MULTIRUN
    jobs = _sweep_jobs(cfg)
    assert len(jobs) == 9
    seen = set()
    for job in jobs:
        c = _compose(["ablation=table2", *job])
        seen.add((c.model.generator.architecture, c.model.discriminator.architecture))
        assert c.loss.r1_gamma == 100 and c.model.generator.channel_base == 16384  # config E
    assert seen == {(g, d) for g in ("orig", "skip", "resnet") for d in ("orig", "skip", "resnet")}


def test_table1_preset_runs_configs_a_to_f():
    cfg = _compose(["ablation=table1"], hydra=True)
    assert cfg.hydra.mode == RunMode.MULTIRUN
    assert [job[0] for job in _sweep_jobs(cfg)] == [f"experiment={name}" for name in sorted(TABLE1)]


def test_optuna_preset_searches_gamma_and_learning_rates():
    cfg = _compose(["hparams_search=optuna"], hydra=True)
    assert cfg.hydra.sweeper._target_.endswith("OptunaSweeper") and cfg.hydra.sweeper.direction == "minimize"
    assert set(cfg.hydra.sweeper.params) == {"loss.r1_gamma", "model.optim.g_lr", "model.optim.d_lr"}
    assert cfg.optimized_metric == "metrics/fid50k_full"


def test_slurm_launcher_follows_the_trainer():
    cfg = _compose(["cluster=slurm", "trainer.num_nodes=2", "trainer.devices=4", "hydra.launcher.partition=gpu"],
                   hydra=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == (2, 4, 4)  # one task per GPU
    assert launcher.partition == "gpu" and launcher.max_num_timeout > 0  # requeued after preemption
    assert cfg.trainer.strategy == "ddp_find_unused_parameters_true" and cfg.ckpt_path == "auto"
    from hydra.utils import get_class

    assert get_class(launcher._target_).__name__ == "SlurmLauncher"  # the plugin is importable
