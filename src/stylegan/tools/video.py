"""Latent walks as GIF or MP4: through a list of seeds, slerp in Z (Shoemake 1985; the StyleGAN paper's PPL walks
Z spherically) or lerp in W, one walk per cell of a grid. Frame ``k * frames`` of a walk is exactly seed ``k``'s
image; ``loop`` returns to the first seed."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from ..networks import Generator
from ..utils.images import tile, to_uint8
from .generate import ToolError, class_labels, seed_latents

SPACES = ("z", "w")
FORMATS = (".gif", ".mp4")


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation along the last dim, t in [0, 1] broadcast over it; lengths are interpolated too (PPL's
    ``slerp_directions`` keeps unit length).
    Exact at the ends (t = 0 gives ``a``, t = 1 gives ``b``); falls back to lerp for (anti)parallel vectors."""
    cos = (a * b).sum(-1, keepdim=True) / (a.norm(dim=-1, keepdim=True) * b.norm(dim=-1, keepdim=True))
    theta = cos.clamp(-1, 1).acos()
    t = t.unsqueeze(-1)
    s = theta.sin()
    ok = s > 1e-6
    safe = torch.where(ok, s, torch.ones_like(s))
    wa = torch.where(ok, ((1 - t) * theta).sin() / safe, 1 - t)
    wb = torch.where(ok, (t * theta).sin() / safe, t)
    return wa * a + wb * b


def parse_grid(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(text))
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise ToolError(f"--grid {text!r}: use COLSxROWS, e.g. 2x2")
    return int(m.group(1)), int(m.group(2))


def keyframe_seeds(seeds: list[int], grid: tuple[int, int], num_keyframes: int | None = None,
                   shuffle_seed: int | None = None) -> list[int]:
    """The keyframes of every cell as the official ``gen_video.py`` picks them: ``num_keyframes`` per cell from the
    seeds repeated cyclically (None: the seeds as given), shuffled by ``RandomState(shuffle_seed)`` if given. Cell
    ``i`` (row-major) walks through the ``i``-th run of ``num_keyframes`` of them."""
    if num_keyframes is not None:
        if num_keyframes < 1:
            raise ToolError(f"--num-keyframes {num_keyframes}: must be >= 1")
        seeds = [seeds[i % len(seeds)] for i in range(num_keyframes * grid[0] * grid[1])]
    if shuffle_seed is not None:
        order = np.array(seeds, dtype=np.int64)
        np.random.RandomState(shuffle_seed).shuffle(order)
        seeds = order.tolist()
    return seeds


def check_walk(seeds: list[int], grid: tuple[int, int], space: str, frames: int, out: str) -> None:
    """The walk options, checked before any work: every grid cell walks through at least two seeds."""
    cells = grid[0] * grid[1]
    if len(seeds) % cells or len(seeds) // cells < 2:
        raise ToolError(f"--seeds: {len(seeds)} seeds do not split into {cells} walks of >= 2 seeds each "
                        f"(--grid {grid[0]}x{grid[1]}); pass a multiple of {cells} seeds, >= {2 * cells}")
    if space not in SPACES:
        raise ToolError(f"--space {space!r}: use z (slerp) or w (lerp)")
    if frames < 1:
        raise ToolError(f"--frames {frames}: frames per transition must be >= 1")
    suffix = Path(out).suffix.lower()
    if suffix not in FORMATS:
        raise ToolError(f"{out}: the video must end in .gif or .mp4")
    if Path(out).is_dir():
        raise ToolError(f"{out} is a folder; pass a file name ending in .gif or .mp4")
    if suffix == ".mp4":
        mp4_writer_module(out)


def walk_latents(G: Generator, seeds: list[int], space: str, frames: int, loop: bool = True, psi: float = 1.0,
                 class_idx: int | None = None) -> torch.Tensor:
    """The ws of one walk, [num_frames, num_ws, w_dim]: ``frames`` per transition between consecutive seeds (and
    back to the first one with ``loop``), plus the last seed when not looping."""
    keys = seeds + seeds[:1] if loop else seeds
    device = next(G.parameters()).device
    t = torch.arange(frames, dtype=torch.float64, device=device) / frames
    c = class_labels(G, class_idx, 1).to(device)
    if space == "z":
        z = seed_latents(keys, G.z_dim).to(device, torch.float64)  # the seeds' float32 z, interpolated in float64
        path = torch.cat([slerp(z[i, None], z[i + 1, None], t) for i in range(len(keys) - 1)] +
                         ([] if loop else [z[-1:]]))
        return G.mapping(path.float(), c.expand(len(path), -1), truncation_psi=psi)
    ws = G.mapping(seed_latents(keys, G.z_dim).to(device), c.expand(len(keys), -1), truncation_psi=psi)
    tw = t.float()[:, None, None]
    path = [ws[i, None].lerp(ws[i + 1, None], tw) for i in range(len(keys) - 1)]
    return torch.cat(path + ([] if loop else [ws[-1:]]))


@torch.no_grad()
def walk_frames(G: Generator, seeds: list[int], grid: tuple[int, int] = (1, 1), space: str = "z", frames: int = 30,
                loop: bool = True, psi: float = 1.0, class_idx: int | None = None, noise_mode: str = "const",
                batch_size: int = 16, device: torch.device | str = "cpu") -> Iterator[np.ndarray]:
    """Frames [H', W', C] uint8: the seeds split into ``cols x rows`` consecutive walks, tiled row-major."""
    G = G.to(device)
    cols, rows = grid
    per = len(seeds) // (cols * rows)
    walks = [walk_latents(G, seeds[i * per : (i + 1) * per], space, frames, loop, psi, class_idx)
             for i in range(cols * rows)]
    ws = torch.stack(walks, dim=1)  # [num_frames, cells, num_ws, w_dim]
    step = max(1, batch_size // len(walks))
    for start in range(0, len(ws), step):
        chunk = ws[start : start + step]
        img = to_uint8(G.synthesis(chunk.flatten(0, 1), noise_mode=noise_mode))
        for f in img.reshape(len(chunk), len(walks), *img.shape[1:]):
            yield tile(f, cols=cols)


def write_video(frames: Iterator[np.ndarray], out: str | os.PathLike, fps: int = 30) -> tuple[Path, int]:
    """GIF (Pillow, looping; exact for gray images) or MP4 (H.264 via imageio-ffmpeg, the ``[video]`` extra).
    Written to a temporary name in the same folder, then renamed: an existing file survives a failure."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp{os.getpid()}{out.suffix}")
    n = 0
    try:
        if out.suffix.lower() == ".gif":
            from PIL import Image

            images = [Image.fromarray(f[:, :, 0] if f.shape[2] == 1 else f) for f in frames]
            n = len(images)
            images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], loop=0,
                           duration=round(1000 / fps))
        else:
            writer = mp4_writer_module(out).get_writer(tmp, fps=fps, codec="libx264", quality=8, macro_block_size=1,
                                              ffmpeg_log_level="error")
            try:
                for f in frames:
                    writer.append_data(np.repeat(f, 3, axis=2) if f.shape[2] == 1 else f)
                    n += 1
            finally:
                writer.close()
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out, n


def mp4_writer_module(out: str | os.PathLike):
    """imageio, once imageio-ffmpeg (its ffmpeg binary) is known to be there; else one line naming ``out`` and the
    extra to install. The projector calls it before any work when it will write an MP4."""
    try:
        import imageio.v2 as imageio
        import imageio_ffmpeg  # noqa: F401  (the ffmpeg binary)
    except ImportError as e:
        raise ToolError(f"{out}: MP4 needs imageio and imageio-ffmpeg ({e}); pip install 'stylegan-lab[video]', "
                        "or write a .gif") from None
    return imageio
