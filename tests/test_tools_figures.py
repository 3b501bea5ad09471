"""``stylegan mix`` / ``video`` / ``project`` (issue 17): the mixing figure's tiles equal direct generation with the
mixed ws, the bands follow the network's real wiring, walks pass exactly through the seeds' images, slerp keeps the
geometry, and projection of a generated image recovers it (a number, on CPU)."""

from __future__ import annotations

import math

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from PIL import Image

from references import OFFICIAL_FIXTURE
from stylegan.official import load_official_file
from stylegan.tools.__main__ import main
from stylegan.tools.generate import seed_latents
from stylegan.tools.mixing import parse_styles, w_resolutions
from stylegan.tools.projection import PixelDistance, ProjectionConfig, learning_rate, noise_regularization, project
from stylegan.tools.video import slerp, walk_frames
from stylegan.utils.images import to_uint8

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks (conftest)


def _png(path) -> np.ndarray:
    return np.asarray(Image.open(path))


def _G():
    G, _ = load_official_file(OFFICIAL_FIXTURE)
    return G.eval().requires_grad_(False)


def _seed_ws(G, seeds):
    return G.mapping(seed_latents(seeds, G.z_dim), torch.zeros([len(seeds), G.c_dim]))


def test_bands_follow_the_wiring_of_the_synthesis_network():
    """Feed ws[:, i] = i and record which w each convolution's affine layer receives: that is the resolution the
    w drives. Coarse = 4-8, middle = 16-32 (StyleGAN Fig. 3)."""
    G = _G()
    seen: dict[int, set[int]] = {}
    hooks = []
    for res in G.synthesis.block_resolutions:
        block = getattr(G.synthesis, f"b{res}")
        for name in ("conv0", "conv1"):
            if hasattr(block, name):
                hooks.append(getattr(block, name).affine.register_forward_hook(
                    lambda m, inp, out, res=res: seen.setdefault(int(inp[0][0, 0].item()), set()).add(res)))
    ws = torch.arange(G.num_ws, dtype=torch.float32)[None, :, None].expand(1, -1, G.w_dim)
    G.synthesis(ws, noise_mode="const")
    for h in hooks:
        h.remove()
    conv_res = [seen[i].pop() for i in sorted(seen)]
    assert w_resolutions(G)[: len(conv_res)] == conv_res and len(conv_res) == G.num_ws - 1
    assert parse_styles("coarse", G) == [i for i, r in enumerate(w_resolutions(G)) if r <= 8] == [0, 1, 2]
    assert parse_styles("middle,0", G) == [0, 3, 4, 5, 6, 7] and parse_styles("0-2,5", G) == [0, 1, 2, 5]


def test_mixing_figure_tiles_equal_direct_generation(tmp_path):
    out = tmp_path / "mix.png"
    assert main(["mix", "--model", str(OFFICIAL_FIXTURE), "--rows", "1,2", "--cols", "3,4,5", "--styles",
                 "coarse,7", "--trunc", "0.8", "--batch-size", "1", "--out", str(out), "--quiet"]) == 0
    fig = _png(out)
    G = _G()
    R = G.img_resolution
    assert fig.shape == (3 * R, 4 * R, 3)
    tiles = fig.reshape(3, R, 4, R, 3).transpose(0, 2, 1, 3, 4)
    assert tiles[0, 0].max() == 0  # the empty corner
    # the sources mapped in one batch, as the tool does (a matmul's rounding depends on the batch size)
    ws = G.mapping(seed_latents([1, 2, 3, 4, 5], G.z_dim), torch.zeros([5, 0]), truncation_psi=0.8)
    rows, cols = ws[:2], ws[2:]

    def image(ws):
        return to_uint8(G.synthesis(ws[None], noise_mode="const"))[0]

    for c in range(3):
        assert np.array_equal(tiles[0, c + 1], image(cols[c]))
    for r in range(2):
        assert np.array_equal(tiles[r + 1, 0], image(rows[r]))
        for c in range(3):
            mixed = rows[r].clone()
            for i in (0, 1, 2, 7):
                mixed[i] = cols[c, i]
            assert np.array_equal(tiles[r + 1, c + 1], image(mixed))


def test_slerp_geometry_in_float64():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(1, 64, generator=g, dtype=torch.float64), torch.randn(1, 64, generator=g, dtype=torch.float64)
    b = b / b.norm() * a.norm()  # equal lengths: the path stays on the sphere
    theta = math.acos(float((a * b).sum() / (a.norm() * b.norm())))
    t = torch.tensor([0.0, 0.25, 0.6, 1.0], dtype=torch.float64)
    p = slerp(a, b, t)
    assert torch.equal(p[0], a[0]) and torch.allclose(p[-1], b[0], atol=1e-12)
    assert torch.allclose(p.norm(dim=-1), a.norm().expand(4), rtol=1e-12)
    angles = torch.acos(((p * a).sum(-1) / (p.norm(dim=-1) * a.norm())).clamp(-1, 1))
    assert torch.allclose(angles, t * theta, atol=1e-7)


@pytest.mark.parametrize("space", ["z", "w"])
def test_walk_passes_through_the_seeds_images(space):
    G, seeds, frames = _G(), [3, 8, 1, 6], 3
    video = list(walk_frames(G, seeds, (2, 1), space, frames, loop=True, batch_size=1))
    assert len(video) == 2 * frames  # two seeds per walk, looped: 2 transitions of 3 frames
    R = G.img_resolution
    for walk, keys in enumerate(([3, 8], [1, 6])):
        for k, seed in enumerate(keys):
            direct = to_uint8(G.synthesis(_seed_ws(G, [seed]), noise_mode="const"))[0]
            assert np.array_equal(video[k * frames][:, walk * R : (walk + 1) * R], direct)
    # in between, the frames differ from both ends
    assert not np.array_equal(video[1], video[0]) and not np.array_equal(video[1], video[frames])


def test_video_files(tmp_path):
    gif, mp4 = tmp_path / "walk.gif", tmp_path / "walk.mp4"
    args = ["video", "--model", str(OFFICIAL_FIXTURE), "--seeds", "0-3", "--frames", "4", "--quiet"]
    assert main([*args, "--grid", "2x1", "--out", str(gif)]) == 0
    assert main([*args, "--space", "w", "--no-loop", "--out", str(mp4)]) == 0
    R = _G().img_resolution
    assert iio.imread(gif).shape[:3] == (8, R, 2 * R)  # 2 seeds per walk, looped
    assert iio.imread(mp4, plugin="FFMPEG", index=None).shape[:3] == (3 * 4 + 1, R, R)  # 4 seeds, not looped


def test_projection_schedule_and_noise_regularization():
    cfg = ProjectionConfig()
    lrs = [learning_rate(t / 1000, cfg) for t in range(1000)]
    assert lrs[0] == 0 and max(lrs) == cfg.initial_learning_rate and lrs[-1] < 1e-4
    assert all(v == cfg.initial_learning_rate for v in lrs[50:750]) and lrs[25] == pytest.approx(0.05)
    checker = torch.tensor([[(-1.0) ** (i + j) for j in range(16)] for i in range(16)])
    assert float(noise_regularization(checker)) == pytest.approx(2.0)  # 16x16: -1 both ways; 8x8 average: 0
    stripes = checker[0].expand(16, 16)  # x-shift: -1; y-shift: +1; then zero
    assert float(noise_regularization(stripes)) == pytest.approx(2.0)


def test_projection_recovers_a_generated_image():
    """The image of a seed (noise off, so it depends on w alone) is projected in 200 steps from w_avg: the squared
    error falls below a tenth of the starting point's (measured: 0.007 / 0.486 and 0.040 / 1.072 for seeds 7, 11)."""
    G = _G()
    for name, p in G.named_parameters():
        if name.endswith("noise_strength"):
            p.zero_()
    target = G.synthesis(_seed_ws(G, [7]), noise_mode="const")[0]
    start = G.synthesis(G.mapping.w_avg.expand(1, G.num_ws, -1), noise_mode="const")[0]
    cfg = ProjectionConfig(num_steps=200, w_avg_samples=1000)
    result = project(G, (target + 1) * 127.5, PixelDistance(), cfg, seed=1)
    projected = G.synthesis(result["ws"][None], noise_mode="const")[0]
    assert result["ws"].shape == (G.num_ws, G.w_dim) and torch.equal(result["ws"][0], result["ws"][-1])  # W
    assert float((projected - target).square().mean()) < 0.1 * float((start - target).square().mean())


def test_project_command_writes_the_latent_and_renders_it_back(tmp_path):
    G = _G()
    target = tmp_path / "target.png"
    Image.fromarray(to_uint8(G.synthesis(_seed_ws(G, [5]), noise_mode="const"))[0]).resize((48, 40)).save(target)
    out = tmp_path / "proj"
    assert main(["project", "--model", str(OFFICIAL_FIXTURE), "--target", str(target), "--outdir", str(out),
                 "--steps", "5", "--w-plus", "--distance", "pixel", "--quiet"]) == 0
    for name in ("target.png", "proj.png", "side_by_side.png", "projected_w.npz", "projected_w.pt"):
        assert (out / name).is_file()
    w = np.load(out / "projected_w.npz")["w"]
    assert w.shape == (1, G.num_ws, G.w_dim) and not np.array_equal(w[0, 0], w[0, -1])  # W+: one w per layer
    saved = torch.load(out / "projected_w.pt", weights_only=True)
    assert np.array_equal(saved["ws"].numpy(), w[0]) and set(saved["noise"]) == {
        n for n, _ in G.synthesis.named_buffers() if n.endswith("noise_const")}
    assert _png(out / "side_by_side.png").shape == (G.img_resolution, 2 * G.img_resolution, 3)
    assert main(["generate", "--model", str(OFFICIAL_FIXTURE), "--projected-w", str(out / "projected_w.npz"),
                 "--outdir", str(tmp_path / "gen")]) == 0
    expected = to_uint8(G.synthesis(torch.from_numpy(w), noise_mode="const"))[0]
    assert np.array_equal(_png(tmp_path / "gen" / "proj00.png"), expected)


def test_bad_input_is_one_line_before_any_work(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    (tmp_path / "file").write_text("x")
    model = str(OFFICIAL_FIXTURE)
    cases = [
        (["mix", "--model", model, "--rows", "1", "--cols", "2", "--styles", "fine", "--out", "m.png"],
         "no fine layers"),
        (["mix", "--model", model, "--rows", "1", "--cols", "2", "--styles", "0-9", "--out", "m.png"],
         "outside this generator's ws 0-7"),
        (["mix", "--model", model, "--rows", "1-x", "--cols", "2", "--out", "m.png"], "--rows '1-x'"),
        (["mix", "--model", model, "--rows", "1", "--cols", "2", "--out", "m.jpg"], "ending in .png"),
        (["video", "--model", model, "--seeds", "0-2", "--grid", "2x1", "--out", "v.gif"], "3 seeds do not split"),
        (["video", "--model", model, "--seeds", "0-3", "--grid", "2by1", "--out", "v.gif"], "--grid '2by1'"),
        (["video", "--model", model, "--seeds", "0-3", "--out", "v.avi"], "must end in .gif or .mp4"),
        (["video", "--model", model, "--seeds", "0-3", "--space", "q", "--out", "v.gif"], "--space 'q'"),
        (["project", "--model", model, "--target", str(text), "--outdir", "p"], "not an image Pillow can read"),
        (["project", "--model", model, "--target", "missing.png", "--outdir", "p"], "does not exist"),
        (["project", "--model", model, "--target", str(text), "--outdir", str(tmp_path / "file")], "is a file"),
        (["project", "--model", model, "--target", str(text), "--outdir", "p", "--distance", "l2"], "--distance"),
        (["generate", "--model", model, "--projected-w", str(text), "--outdir", "g"], "not a .npz"),
        (["generate", "--model", model, "--outdir", "g"], "--seeds or --projected-w"),
    ]
    np.savez(tmp_path / "w.npz", w=np.zeros([1, 3, 4], dtype=np.float32))
    cases.append((["generate", "--model", model, "--projected-w", str(tmp_path / "w.npz"), "--outdir", "g"],
                  "this generator needs [N, 8, 64]"))
    for argv, expected in cases:
        assert main([*argv, *(["--quiet"] if argv[0] != "generate" else [])]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("stylegan: error: ") and expected in err and "\n" not in err, (argv, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "notes.txt", "w.npz"]


def test_project_without_lpips_warns_once_falls_back_to_pixel_and_saves_the_video(tmp_path, capsys, monkeypatch):
    """``--distance auto`` where LPIPS cannot load (here: the ``[metrics]`` extra missing) warns in one line and
    projects with the pixel distance: the same latent, bit for bit, as ``--distance pixel`` (which does not warn).
    ``--save-video``: proj.mp4 with one frame per step (4 steps), the target on the left of every frame (up to the
    codec's loss: 8 / 255 on average on these 32 x 32 halves), G's image of the step on the right, moving, the
    last one proj.png."""
    import sys
    import warnings

    monkeypatch.setitem(sys.modules, "torch_fidelity", None)  # `import torch_fidelity.*` raises ImportError
    # pytest records warnings instead of printing them: print them as Python does by default (formatwarning to
    # stderr), so that the command's own formatting shows
    monkeypatch.setattr(warnings, "showwarning", lambda message, category, filename, lineno, file=None, line=None:
                        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line)))
    G = _G()
    target = tmp_path / "target.png"
    Image.fromarray(to_uint8(G.synthesis(_seed_ws(G, [5]), noise_mode="const"))[0]).save(target)
    args = ["project", "--model", str(OFFICIAL_FIXTURE), "--target", str(target), "--steps", "4", "--quiet"]
    assert main([*args, "--outdir", str(tmp_path / "auto"), "--save-video"]) == 0
    out = capsys.readouterr()
    warnings = [line for line in out.err.splitlines() if "warning" in line.lower()]
    assert len(warnings) == 1 and warnings[0].startswith("stylegan: warning: LPIPS is unavailable, so the projection "
                                                         "uses the pixel distance"), out.err
    assert "--distance pixel silences this" in warnings[0] and "(distance: pixel-pyramid)" in out.out
    assert main([*args, "--outdir", str(tmp_path / "pixel"), "--distance", "pixel"]) == 0
    assert "warning" not in capsys.readouterr().err.lower()
    auto, pixel = (np.load(tmp_path / d / "projected_w.npz")["w"] for d in ("auto", "pixel"))
    assert np.array_equal(auto, pixel) and not (tmp_path / "pixel" / "proj.mp4").exists()
    video = iio.imread(tmp_path / "auto" / "proj.mp4", plugin="FFMPEG", index=None)
    R = G.img_resolution
    assert video.shape == (4, R, 2 * R, 3)
    video, left = video.astype(float), _png(tmp_path / "auto" / "target.png").astype(float)
    assert all(np.abs(frame[:, :R] - left).mean() < 12 for frame in video)  # G's images: 41-51 off
    assert np.abs(video[-1, :, R:] - video[0, :, R:]).mean() > 2
    # each frame is its step's w with its step's noise maps: the last one is proj.png up to the codec (14 / 255 on
    # this noisy half), far from the same w drawn with G's own noise maps (34 / 255)
    w = torch.from_numpy(np.load(tmp_path / "auto" / "projected_w.npz")["w"])
    own_noise = to_uint8(G.synthesis(w, noise_mode="const"))[0].astype(float)
    to_proj = np.abs(video[-1, :, R:] - _png(tmp_path / "auto" / "proj.png").astype(float)).mean()
    assert to_proj < 18 and to_proj < 0.6 * np.abs(video[-1, :, R:] - own_noise).mean()
