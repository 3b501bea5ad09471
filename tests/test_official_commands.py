"""The official scripts' commands, pasted from the stylegan2-ada-pytorch and stylegan3 READMEs with ``python``
replaced by ``stylegan`` and the network URL by a tiny local model, run through the real CLI (``stylegan``'s
``main``): they must write the files the official scripts write, equal to what this tool's own spelling gives."""

from __future__ import annotations

import shlex
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from PIL import Image

from stylegan.networks import Generator
from stylegan.tools.__main__ import build_parser, main

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks (conftest)

ADA = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained"
SG3 = "https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan3/versions/1/files/stylegan3-r-afhqv2-512x512.pkl"

# (official command as printed in its README, the same in this tool's own spelling, files both must write);
# a command's `&&` runs the next one in the same folder. `--num-steps` / `--w-frames` (official options) keep
# the projection and the video short.
CASES = {
    "generate_curated": (
        f"python generate.py --outdir=out --trunc=1 --seeds=85,265,297,849 --network={ADA}/metfaces.pkl",
        "stylegan generate --model MODEL --seeds 85,265,297,849 --outdir ours",
        [f"seed{s:04d}.png" for s in (85, 265, 297, 849)]),
    "generate_truncated": (
        f"python generate.py --outdir=out --trunc=0.7 --seeds=600-605 \\\n    --network={ADA}/metfaces.pkl",
        "stylegan generate --model MODEL --trunc 0.7 --seeds 600,601,602,603,604,605 --outdir ours",
        [f"seed{s:04d}.png" for s in range(600, 606)]),
    "generate_class": (
        f"python generate.py --outdir=out --seeds=0-35 --class=1 \\\n    --network={ADA}/cifar10.pkl",
        "stylegan generate --model MODEL --seeds 0-35 --class 1 --outdir ours",
        [f"seed{s:04d}.png" for s in range(36)]),
    "gen_images_sg3": (
        f"python gen_images.py --outdir=out --trunc=1 --seeds=2 \\\n    --network={SG3}",
        "stylegan generate --model MODEL --seeds 2 --outdir ours",
        ["seed0002.png"]),
    "style_mixing": (
        f"python style_mixing.py --outdir=out --rows=85,100,75,458,1500 --cols=55,821,1789,293 \\\n"
        f"    --network={ADA}/metfaces.pkl",
        "stylegan mix --model MODEL --rows 85,100,75,458,1500 --cols 55,821,1789,293 --out ours/grid.png",
        ["grid.png"]),
    "projector": (
        f"python projector.py --outdir=out --target=~/mytargetimg.png \\\n    --network={ADA}/ffhq.pkl "
        "--num-steps=20 --save-video=True && "
        f"python generate.py --outdir=out --projected_w=out/projected_w.npz \\\n    --network={ADA}/ffhq.pkl",
        "stylegan project --model MODEL --target HOME/mytargetimg.png --outdir ours --steps 20 --save-video && "
        "stylegan generate --model MODEL --projected-w ours/projected_w.npz --outdir ours",
        ["target.png", "proj.png", "projected_w.npz", "proj.mp4", "proj00.png"]),
    "gen_video_sg3": (
        f"python gen_video.py --output=lerp.mp4 --trunc=1 --seeds=0-31 --grid=4x2 \\\n    --network={SG3} "
        "--w-frames=2",
        "stylegan video --model MODEL --seeds 0-31 --grid 4x2 --frames 2 --out ours/lerp.mp4",
        ["lerp.mp4"]),
}


def _model(path: Path, c_dim: int = 0) -> Path:
    """A 32x32 generator (8 ws, so the official default --styles 0-6 fits) in stylegan-train's checkpoint layout."""
    torch.manual_seed(0)
    G = Generator(z_dim=8, w_dim=8, c_dim=c_dim, img_resolution=32, img_channels=3, channel_base=256, channel_max=16,
                  mapping_kwargs={"num_layers": 2}).eval()
    with torch.no_grad():
        G.mapping.w_avg.normal_()  # so that truncation changes the images
    torch.save({"state_dict": {f"G_ema.{k}": v for k, v in G.state_dict().items()},
                "stylegan": {"G_kwargs": G.init_kwargs, "cur_nimg": 1000}}, path)
    return path


def _run(command: str, replace: dict[str, str]) -> None:
    """Each `&&`-joined command through ``stylegan``'s main, as a shell would split it (``\\``-newlines joined)."""
    for part in command.replace("\\\n", " ").split("&&"):
        for old, new in replace.items():
            part = part.replace(old, new)
        argv = shlex.split(part)
        assert argv[0] in ("python", "stylegan"), argv
        assert main([*argv[1:], "--quiet"]) == 0, part


def _pixels(path: Path) -> np.ndarray:
    if path.suffix == ".mp4":
        return iio.imread(path, plugin="FFMPEG", index=None)
    if path.suffix == ".npz":
        return np.load(path)["w"]
    return np.asarray(Image.open(path))


@pytest.mark.parametrize("case", list(CASES))
def test_official_readme_command_writes_the_official_files_equal_to_our_spelling(case, tmp_path, monkeypatch):
    official, ours, files = CASES[case]
    model = _model(tmp_path / "model.ckpt", c_dim=10 if "class" in official else 0)
    home = tmp_path / "home"
    home.mkdir()
    Image.fromarray(np.random.RandomState(0).randint(0, 256, (40, 48, 3), dtype=np.uint8)).save(
        home / "mytargetimg.png")
    monkeypatch.setenv("HOME", str(home))  # the README's ~/mytargetimg.png
    monkeypatch.chdir(tmp_path)
    urls = {u: str(model) for u in (f"{ADA}/metfaces.pkl", f"{ADA}/cifar10.pkl", f"{ADA}/ffhq.pkl", SG3)}
    _run(official, {"python projector.py": "python projector.py --distance pixel", **urls})
    _run(ours, {"MODEL": str(model), "HOME": str(home), "--steps": "--distance pixel --steps"})
    out = tmp_path / ("." if case.startswith("gen_video") else "out")
    for name in files:
        assert (out / name).is_file(), name
        assert np.array_equal(_pixels(out / name), _pixels(tmp_path / "ours" / name)), name
    if case == "gen_video_sg3":  # the official length: num_keyframes * w_frames (32 seeds / 8 cells = 4 keyframes)
        assert _pixels(out / "lerp.mp4").shape[:3] == (4 * 2, 2 * 32, 4 * 32)
    if case == "style_mixing":  # style_mixing.py's per-image files are the figure's tiles
        rows, cols = [85, 100, 75, 458, 1500], [55, 821, 1789, 293]
        tiles = _pixels(out / "grid.png").reshape(6, 32, 5, 32, 3).transpose(0, 2, 1, 3, 4)
        assert tiles[0, 0].max() == 0
        names = {f"{s}-{s}.png" for s in rows + cols} | {f"{r}-{c}.png" for r in rows for c in cols}
        assert {p.name for p in out.iterdir()} == names | {"grid.png"}
        for i, r in enumerate(rows):
            assert np.array_equal(_pixels(out / f"{r}-{r}.png"), tiles[i + 1, 0])
            for j, c in enumerate(cols):
                assert np.array_equal(_pixels(out / f"{r}-{c}.png"), tiles[i + 1, j + 1])
        for j, c in enumerate(cols):
            assert np.array_equal(_pixels(out / f"{c}-{c}.png"), tiles[0, j + 1])


def test_official_option_spellings_parse_as_ours():
    parser = build_parser()
    for text, value in (("--save-video=True", True), ("--save-video=False", False), ("--save-video true", True),
                        ("--save-video 0", False), ("--save-video", True), ("", False)):
        args = parser.parse_args(["projector", "--network=m", "--target=t", "--outdir=o", *text.split()])
        assert args.save_video is value and args.model == "m", text
    args = parser.parse_args(["gen_video.py", "--network=m", "--seeds=0-3", "--w-frames=7", "--output=v.mp4"])
    assert (args.frames, args.out, args.run.__name__) == (7, "v.mp4", "cmd_video")
    args = parser.parse_args(["style_mixing", "--network=m", "--rows=1", "--cols=2", "--styles=0-6", "--outdir=o"])
    assert (args.styles, args.outdir, args.out, args.run.__name__) == ("0-6", "o", None, "cmd_mix")


def test_official_spellings_refuse_in_one_line(tmp_path, capsys):
    model = str(_model(tmp_path / "model.ckpt"))
    with pytest.raises(SystemExit) as exit_info:  # argparse's own usage error
        main(["projector", "--network", model, "--target", "t.png", "--outdir", "o", "--save-video=maybe"])
    assert exit_info.value.code == 2
    assert "--save-video: 'maybe' is not a boolean; use True or False" in capsys.readouterr().err
    for extra in ([], ["--out=a.png", "--outdir=o"]):
        assert main(["style_mixing", "--network", model, "--rows=1", "--cols=2", *extra]) == 2
        err = capsys.readouterr().err
        assert err.startswith("stylegan: error: pass --out FILE.png (the figure) or --outdir DIR") and \
            len(err.splitlines()) == 1, err
    assert not (tmp_path / "o").exists() and not (tmp_path / "a.png").exists()


def test_gen_video_keyframes_and_shuffle_as_the_official_script(tmp_path):
    """--num-keyframes repeats the seeds cyclically to fill every cell, --shuffle-seed shuffles them with numpy's
    RandomState first (gen_video.py): the same video as the resulting seed list passed explicitly."""
    model = str(_model(tmp_path / "model.ckpt"))
    order = np.array([0, 1, 2, 3, 0, 1], dtype=np.int64)  # 3 keyframes x 2 cells from the seeds 0-3
    np.random.RandomState(5).shuffle(order)
    assert order.tolist() != [0, 1, 2, 3, 0, 1]  # the shuffle moves something
    common = ["--network", model, "--grid=2x1", "--w-frames=1", "--quiet"]
    assert main(["gen_video.py", "--seeds=0-3", "--num-keyframes=3", "--shuffle-seed=5", *common,
                 f"--output={tmp_path / 'official.gif'}"]) == 0
    assert main(["video", "--seeds", ",".join(map(str, order)), *common, "--out", str(tmp_path / "ours.gif")]) == 0
    official, ours = (iio.imread(tmp_path / n, index=None) for n in ("official.gif", "ours.gif"))
    assert official.shape[0] == 3 and np.array_equal(official, ours)  # num_keyframes * w_frames frames
