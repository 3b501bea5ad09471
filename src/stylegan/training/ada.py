"""ADA: adaptive discriminator augmentation (Karras et al. 2020, "Training Generative Adversarial Networks with
Limited Data").

``AdaptiveAugment`` is the paper's 'bgc' pipeline (Sec. 2.3, Appendix B, Fig. 4): every image D sees, real or fake
(also in the R1 pass), is augmented, each transformation applied to each image independently with probability p,
in the official order:

* pixel blitting (exact integer resampling, reflect padding): x-flip, 90-degree rotations, integer translation;
* general geometric, as one affine resampling: isotropic scaling, pre-rotation, anisotropic scaling, post-rotation,
  fractional translation, resampled as the official (``filtered_warp``): reflect-padded by the margin the batch's
  transforms reach, upsampled 2x with the sym6 wavelet lowpass, sampled bilinearly on that grid, lowpassed and
  decimated back, so that rotations and scalings alias no more than the official's (Appendix B.2). Images whose
  geometric transforms are all identities skip it and stay bit-exact;
* color, as one 4x4 matrix: brightness, contrast, luma flip, hue rotation, saturation.

The two rotations each get probability ``1 - sqrt(1 - p)`` so that "any rotation" has probability p (official).
Strengths are the official defaults. Everything is differentiable w.r.t. the images (G's loss and R1 flow
through). 1-channel images: the color matrix is applied to (g, g, g) and the result averaged over RGB (official),
so only brightness, contrast and luma flip act (hue and saturation are the identity on gray).

p is a buffer (checkpointed). With ``target`` set, ``observe`` adjusts p from the sign of D's real logits
(Sec. 3, Eq. r_t = E[sign(D_train)]): after every ``interval``-th minibatch p += sign(r_t - target) * N * interval /
(speed_kimg * 1000), clamped at 0 only, as official (p can go from 0 to 1 in ``speed_kimg``; drawing clamps it to
[0, 1]). ``target=None``: fixed p.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

GEOM = ("scale", "prerot", "aniso", "postrot", "fx", "fy")
COLOR = ("brightness", "contrast", "lumaflip", "hue", "saturation")


def _rot2(theta: torch.Tensor) -> torch.Tensor:
    """[N] angles -> [N, 3, 3] homogeneous 2D rotations (x right, y down)."""
    c, s, z, o = theta.cos(), theta.sin(), torch.zeros_like(theta), torch.ones_like(theta)
    return torch.stack([c, -s, z, s, c, z, z, z, o], -1).view(-1, 3, 3)


def _diag3(sx: torch.Tensor, sy: torch.Tensor) -> torch.Tensor:
    return torch.diag_embed(torch.stack([sx, sy, torch.ones_like(sx)], -1))


def _shift3(tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    m = torch.eye(3, device=tx.device, dtype=tx.dtype).repeat(tx.shape[0], 1, 1)
    m[:, 0, 2], m[:, 1, 2] = tx, ty
    return m


def geometric_inverse(prm: dict[str, torch.Tensor]) -> torch.Tensor:
    """[N, 3, 3] map from output to input pixel coordinates (centered at the image center, in pixels): the inverse
    of scale, pre-rotation, anisotropic scale, post-rotation, fractional translation applied in that order."""
    s, a = prm["scale"], prm["aniso"]
    g = _diag3(1 / s, 1 / s) @ _rot2(-prm["prerot"]) @ _diag3(1 / a, a) @ _rot2(-prm["postrot"])
    return g @ _shift3(-prm["fx"], -prm["fy"])


def color_matrix(prm: dict[str, torch.Tensor]) -> torch.Tensor:
    """[N, 4, 4] color matrix acting on homogeneous RGB: brightness (add b), contrast (times c), luma flip
    (Householder reflection about the luma axis v = (1, 1, 1) / sqrt 3), hue (rotation about v), saturation (scale
    the part orthogonal to v), composed in that order."""
    b = prm["brightness"]
    n, dev, dt = b.shape[0], b.device, b.dtype
    eye = torch.eye(4, device=dev, dtype=dt).expand(n, 4, 4)
    v = torch.tensor([1, 1, 1, 0], device=dev, dtype=dt) / math.sqrt(3)
    vv = torch.outer(v, v)
    c = eye.clone()
    c[:, :3, 3] = b[:, None]
    c = torch.diag_embed(torch.stack([prm["contrast"]] * 3 + [torch.ones_like(b)], -1)) @ c
    c = (eye - 2 * vv * prm["lumaflip"][:, None, None]) @ c
    th = prm["hue"][:, None, None]
    cross = torch.zeros(4, 4, device=dev, dtype=dt)  # [v]_x: cross product with the luma axis
    cross[0, 1], cross[0, 2], cross[1, 2] = -v[2], v[1], -v[0]
    cross = cross - cross.T
    rot = th.cos() * eye + th.sin() * cross + (1 - th.cos()) * vv
    rot[:, 3, 3] = 1
    c = rot @ c
    return (vv + (eye - vv) * prm["saturation"][:, None, None]) @ c


# The sym6 wavelet's lowpass (Daubechies' symlets; the 12 taps the official augment pipe lists): ADA's geometric
# resampling filter. It is orthonormal (sum of h[k] h[k + 2n] = [n == 0]), so up- then down-sampling with it is the
# identity and an integer shift through the 2x grid stays exact.
SYM6 = (0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633, 0.4910559419267466,
        0.787641141030194, 0.3379294217276218, -0.07263752278646252, -0.021060292512300564, 0.04472490177066578,
        0.0017677118642428036, -0.007800708325034148)


def _taps_view(x: torch.Tensor, dim: int, k: int, stride: int, n: int) -> torch.Tensor:
    """Samples ``k, k + stride, ..., k + stride * (n - 1)`` of ``x`` along ``dim``."""
    index = [slice(None)] * x.dim()
    index[dim] = slice(k, k + stride * (n - 1) + 1, stride)
    return x[tuple(index)]


class _Correlate(torch.autograd.Function):
    """``y[j] = sum_k taps[k] x[stride j + k]`` along ``dim`` (valid part). Forward and backward are sums of strided
    views (on CPU far faster than a 1-channel conv2d with a 1 x 12 kernel, whose backward dominated); the backward is
    the adjoint, itself differentiable, so R1's double backward goes through."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, taps: tuple[float, ...], dim: int, stride: int) -> torch.Tensor:
        n = (x.shape[dim] - len(taps)) // stride + 1
        ctx.args, ctx.length = (taps, dim, stride), x.shape[dim]
        out = _taps_view(x, dim, 0, stride, n) * taps[0]
        for k in range(1, len(taps)):
            out.add_(_taps_view(x, dim, k, stride, n), alpha=taps[k])
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return _CorrelateAdjoint.apply(grad, *ctx.args, ctx.length), None, None, None


class _CorrelateAdjoint(torch.autograd.Function):
    """The adjoint of :class:`_Correlate`: ``x[stride j + k] += taps[k] y[j]`` into zeros of length ``length``."""

    @staticmethod
    def forward(ctx, y: torch.Tensor, taps: tuple[float, ...], dim: int, stride: int, length: int) -> torch.Tensor:
        ctx.args = (taps, dim, stride)
        shape = list(y.shape)
        shape[dim] = length
        out = y.new_zeros(shape)
        for k, w in enumerate(taps):
            _taps_view(out, dim, k, stride, y.shape[dim]).add_(y, alpha=w)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return _Correlate.apply(grad, *ctx.args), None, None, None, None


def _up2(x: torch.Tensor, h: tuple[float, ...], dim: int) -> torch.Tensor:
    """2x FIR up-sampling along ``dim`` with the even-length lowpass ``h`` (gain 2; zero-stuffing, then convolving
    with ``h`` padded by len/2 before and len/2 - 1 after): the adjoint of a stride-2 correlation, without the
    zero-stuffed copy."""
    n, K = x.shape[dim], len(h)
    return _CorrelateAdjoint.apply(x, tuple(2 * v for v in h), dim, 2, 2 * n + K - 2).narrow(dim, K // 2 - 1, 2 * n)


def _down2(x: torch.Tensor, h: tuple[float, ...], dim: int, crop: int) -> torch.Tensor:
    """Correlate with ``h`` along ``dim`` and keep every second sample, after cropping ``crop`` from both ends."""
    return _Correlate.apply(x.narrow(dim, crop, x.shape[dim] - 2 * crop), h, dim, 2)


def filtered_warp(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``x`` [N, C, H, W] resampled at ``g @ p`` for every output pixel p ([N, 3, 3], pixel coordinates centered on the
    image), as the official ADA (Karras et al. 2020, Appendix B.2): reflect-pad by the margin the transformed
    output corners reach plus the filter's support, upsample 2x with the sym6 lowpass, sample bilinearly (zeros
    outside), then lowpass and decimate back to H x W."""
    N, C, H, W = x.shape
    total = math.fsum(SYM6)
    h = tuple(v / total for v in SYM6)  # normalized to sum 1
    K, support = len(h), len(h) // 4  # 12 taps; 3 output pixels on each side
    g = g.to(torch.float64)
    cx, cy = (W - 1) / 2, (H - 1) / 2
    corners = torch.tensor([[-cx, cx, cx, -cx], [-cy, -cy, cy, cy], [1, 1, 1, 1]], dtype=g.dtype, device=g.device)
    src = (g @ corners)[:, :2]  # [N, xy, corner] in input pixels
    reach = torch.stack([(-src[:, 0]).amax(), (-src[:, 1]).amax(), src[:, 0].amax(), src[:, 1].amax()])
    reach = reach + torch.tensor([2 * support - cx, 2 * support - cy] * 2, dtype=g.dtype, device=g.device)
    limit = torch.tensor([W - 1, H - 1] * 2, dtype=g.dtype, device=g.device)
    x0, y0, x1, y1 = (int(v) for v in torch.minimum(reach.clamp(min=0), limit).ceil().tolist())  # one host sync
    x = F.pad(x, [x0, x1, y0, y1], mode="reflect")
    for dim in (3, 2):
        x = _up2(x, h, dim)
    out_h, out_w = 2 * (H + 2 * support), 2 * (W + 2 * support)

    def m(sx: float, sy: float, tx: float = 0.0, ty: float = 0.0) -> torch.Tensor:  # scale, then translate
        return torch.tensor([[sx, 0, tx], [0, sy, ty], [0, 0, 1]], dtype=g.dtype, device=g.device)

    # output grid in [-1, 1] -> output pixels (2x grid) -> output pixels -> padded input pixels -> 2x input grid
    # (samples of the 2x grid sit half a pixel off the doubled coordinates) -> [-1, 1]
    to_input = m(2 / x.shape[3], 2 / x.shape[2]) @ m(2, 2, -0.5, -0.5) @ m(1, 1, (x0 - x1) / 2, (y0 - y1) / 2)
    theta = (to_input @ g @ m(0.5, 0.5, 0.25, 0.25) @ m(out_w / 2, out_h / 2))[:, :2].to(x.dtype)
    grid = F.affine_grid(theta, [N, C, out_h, out_w], align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    for dim in (3, 2):  # lowpass and decimate, cropping the support margin beyond the filter's reach
        x = _down2(x, h, dim, 2 * support - (K - 2) // 2)
    return x


def _reflect(idx: torch.Tensor, n: int) -> torch.Tensor:
    """Indices outside [0, n) mirrored without repeating the edge (F.pad 'reflect')."""
    if n == 1:
        return torch.zeros_like(idx)
    period = 2 * (n - 1)
    idx = idx.remainder(period)
    return torch.where(idx >= n, period - idx, idx)


def blit(x: torch.Tensor, xflip: torch.Tensor, rot90: torch.Tensor, tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    """Exact per-image x-flip, then ``rot90`` quarter turns (as ``torch.rot90(dims=(2, 3))``), then an integer
    shift by (tx, ty) pixels with reflect padding, as one gather (the identity where all are 0)."""
    N, C, H, W = x.shape
    dev = x.device
    # doubled centered coordinates keep the rotation exact: u = 2 * col - (W - 1), v = 2 * row - (H - 1)
    v = (2 * torch.arange(H, device=dev) - (H - 1))[None, :, None] - 2 * ty[:, None, None]
    u = (2 * torch.arange(W, device=dev) - (W - 1))[None, None, :] - 2 * tx[:, None, None]
    v, u = torch.broadcast_tensors(v, u)
    k = rot90[:, None, None]
    v, u = (torch.where(k == 1, u, torch.where(k == 2, -v, torch.where(k == 3, -u, v))),
            torch.where(k == 1, -v, torch.where(k == 2, -u, torch.where(k == 3, v, u))))
    u = torch.where(xflip[:, None, None].bool(), -u, u)
    row, col = _reflect((v + H - 1) // 2, H), _reflect((u + W - 1) // 2, W)
    idx = (row * W + col).view(N, 1, H * W).expand(N, C, H * W)
    return x.flatten(2).gather(2, idx).view(N, C, H, W)


class AdaptiveAugment(nn.Module):
    """The 'bgc' ADA pipeline with probability p (a buffer) and its controller (see the module docstring)."""

    def __init__(self, p: float = 0.0, target: float | None = 0.6, interval: int = 4, speed_kimg: float = 500,
                 xint_max: float = 0.125, scale_std: float = 0.2, rotate_max: float = 1.0, aniso_std: float = 0.2,
                 xfrac_std: float = 0.125, brightness_std: float = 0.2, contrast_std: float = 0.5,
                 hue_max: float = 1.0, saturation_std: float = 1.0) -> None:
        super().__init__()
        if not 0 <= p <= 1 or interval < 1 or speed_kimg <= 0:
            raise ValueError(f"augment: need 0 <= p <= 1, interval >= 1, speed_kimg > 0; got {p}, {interval}, "
                             f"{speed_kimg}")
        self.target, self.interval, self.speed_kimg = target, interval, speed_kimg
        self.xint_max, self.scale_std, self.rotate_max, self.aniso_std = xint_max, scale_std, rotate_max, aniso_std
        self.xfrac_std, self.brightness_std, self.contrast_std = xfrac_std, brightness_std, contrast_std
        self.hue_max, self.saturation_std = hue_max, saturation_std
        self.register_buffer("p", torch.tensor(float(p)))
        self.register_buffer("rt", torch.zeros([]))  # the last r_t estimate (logged)
        self.register_buffer("stats", torch.zeros(2))  # since the last update: sum of sign(D(real)), count (global)

    def sample(self, n: int, device: torch.device | str) -> dict[str, torch.Tensor]:
        """Per-image parameters drawn as official, each set to its identity value unless its coin (prob. p) hits."""
        p = self.p.to(device).clamp(0, 1)
        p_rot = 1 - (1 - p).sqrt()

        def coin(value: torch.Tensor, identity: float, prob: torch.Tensor = p) -> torch.Tensor:
            return torch.where(torch.rand(n, device=device) < prob, value, torch.full_like(value, identity))

        def rand_sym(scale: float) -> torch.Tensor:
            return (torch.rand(n, device=device) * 2 - 1) * scale

        xint = torch.rand(n, device=device) < p  # one coin for both translation axes (official)
        t = torch.stack([rand_sym(self.xint_max), rand_sym(self.xint_max)])  # fractions of the size
        prm = {"xflip": coin(torch.randint(0, 2, [n], device=device), 0),
               "rot90": coin(torch.randint(0, 4, [n], device=device), 0),
               "xint": torch.where(xint, t, torch.zeros_like(t))}
        prm["scale"] = coin(torch.exp2(torch.randn(n, device=device) * self.scale_std), 1.0)
        prm["prerot"] = coin(rand_sym(math.pi * self.rotate_max), 0.0, p_rot)
        prm["aniso"] = coin(torch.exp2(torch.randn(n, device=device) * self.aniso_std), 1.0)
        prm["postrot"] = coin(rand_sym(math.pi * self.rotate_max), 0.0, p_rot)
        frac = torch.rand(n, device=device) < p
        f = torch.randn(2, n, device=device) * self.xfrac_std
        prm["fx"], prm["fy"] = (torch.where(frac, fi, torch.zeros_like(fi)) for fi in f)  # fractions of the size
        prm["brightness"] = coin(torch.randn(n, device=device) * self.brightness_std, 0.0)
        prm["contrast"] = coin(torch.exp2(torch.randn(n, device=device) * self.contrast_std), 1.0)
        prm["lumaflip"] = coin(torch.randint(0, 2, [n], device=device).float(), 0.0)
        prm["hue"] = coin(rand_sym(math.pi * self.hue_max), 0.0)
        prm["saturation"] = coin(torch.exp2(torch.randn(n, device=device) * self.saturation_std), 1.0)
        return prm

    @staticmethod
    def apply(x: torch.Tensor, prm: dict[str, torch.Tensor]) -> torch.Tensor:
        """Apply sampled parameters (``sample``) to [N, C, H, W] images (square; C = 1 or 3). Images whose
        transforms are all identities come back bit-exact."""
        N, C, H, W = x.shape
        if C not in (1, 3) or H != W:
            raise ValueError(f"AdaptiveAugment needs square 1- or 3-channel images, got {tuple(x.shape)}")
        tx, ty = (torch.round(prm["xint"][i] * s).long() for i, s in ((0, W), (1, H)))
        x = blit(x, prm["xflip"].long(), prm["rot90"].long(), tx, ty)
        geo = {k: prm[k].to(torch.float32) for k in GEOM}
        geo["fx"], geo["fy"] = geo["fx"] * W, geo["fy"] * H
        g = geometric_inverse(geo)
        moved = (g - torch.eye(3, device=x.device)).abs().amax(dim=(1, 2)) > 0
        if bool(moved.any()):  # a host sync, as the official's padding needs one anyway
            x = torch.where(moved[:, None, None, None], filtered_warp(x, g), x)
        cm = color_matrix({k: prm[k].to(torch.float32) for k in COLOR})
        recolor = (cm - torch.eye(4, device=x.device)).abs().amax(dim=(1, 2)) > 0
        if C == 1:  # gray g as (g, g, g), the result averaged over RGB (official)
            gain, bias = cm[:, :3, :3].sum(2).mean(1), cm[:, :3, 3].mean(1)
            y = x * gain.view(N, 1, 1, 1).to(x.dtype) + bias.view(N, 1, 1, 1).to(x.dtype)
        else:
            y = torch.einsum("nij,njhw->nihw", cm[:, :3, :3].to(x.dtype), x) + cm[:, :3, 3, None, None].to(x.dtype)
        return torch.where(recolor[:, None, None, None], y, x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.apply(x, self.sample(x.shape[0], x.device))

    @torch.no_grad()
    def observe(self, real_logits: torch.Tensor, iteration: int) -> dict[str, torch.Tensor]:
        """Called once per minibatch (0-based ``iteration``) with D's logits on the reals of D's main pass:
        accumulate sum(sign) and count on the device (summed over DDP ranks, so every rank holds the same p);
        after every ``interval``-th minibatch (0-based ``iteration + 1`` divisible by it: the official's batch_idx
        after its increment) update p. Returns the values to log. (The official
        also counts the reals of a separate lazy-R1 pass, one extra minibatch every 16; here only D main's.)"""
        if self.target is None:
            return {"augment/p": self.p.clone()}
        step = torch.stack([real_logits.detach().float().sign().sum(),
                            torch.tensor(float(real_logits.numel()), device=real_logits.device)])
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(step)
        self.stats += step.to(self.stats.device)
        if (iteration + 1) % self.interval == 0:
            rt = self.stats[0] / self.stats[1].clamp(min=1)
            adjust = torch.sign(rt - self.target) * step[1].to(rt.device) * self.interval / (self.speed_kimg * 1000)
            self.p.copy_((self.p + adjust).clamp(min=0))
            self.rt.copy_(rt)
            self.stats.zero_()
        return {"augment/p": self.p.clone(), "augment/rt": self.rt.clone()}

    def extra_repr(self) -> str:
        return f"p={float(self.p):.4f}, target={self.target}, interval={self.interval}, speed_kimg={self.speed_kimg}"
