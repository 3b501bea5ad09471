"""The run's model summary: parameter counts of G, D and G_ema, no FLOPs column (Lightning's would always read 0)."""

from __future__ import annotations

import logging

import lightning as L

from stylegan.networks import Discriminator, Generator
from stylegan.training.summary import ParameterSummary


class _Pair(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.G = Generator(z_dim=8, w_dim=8, img_resolution=8, img_channels=1, channel_base=64, channel_max=8,
                           mapping_kwargs={"num_layers": 1})
        self.D = Discriminator(img_resolution=8, img_channels=1, channel_base=64, channel_max=8)
        self.D.requires_grad_(False)


def test_summary_counts_parameters_and_has_no_flops(caplog):
    module = _Pair()
    with caplog.at_level(logging.INFO, logger="stylegan.training.summary"):
        ParameterSummary(max_depth=1).on_fit_start(L.Trainer(logger=False, enable_checkpointing=False), module)
    table = caplog.records[-1].getMessage()
    assert "FLOPs" not in table and "Flops" not in table
    rows = {line.split("|")[1].strip(): line.split("|")[3].strip() for line in table.splitlines()
            if line.count("|") == 4 and line.split("|")[1].strip() in ("G", "D")}
    g, d = (sum(p.numel() for p in net.parameters()) for net in (module.G, module.D))
    assert rows == {"G": f"{g / 1000:.1f} K", "D": f"{d / 1000:.1f} K"}
    totals = {line[10:]: line[:10].strip() for line in table.splitlines()[-4:-1]}
    assert totals == {"Trainable params": f"{g / 1000:.1f} K", "Non-trainable params": f"{d / 1000:.1f} K",
                      "Total params": f"{(g + d) / 1000:.1f} K"}
