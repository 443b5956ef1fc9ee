import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from export.onnx_export import example_inputs, export_warp, parity, warp_dims, write_manifest  # noqa: E402


def test_export_writes_a_checked_model_and_manifest(tmp_path):
    entry = export_warp(256, tmp_path)
    path = tmp_path / entry["file"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
    assert [i["name"] for i in entry["inputs"]] == [
        "ctrl", "tps", "mouth_poly", "mouth_frame", "mouth_box", "fine_boxes", "colors", "lids",
        "irises"]
    assert [o["name"] for o in entry["outputs"]] == ["flow", "mouth", "fine_flow", "eye_white"]
    manifest = json.loads(write_manifest({"warp_256": entry}, tmp_path).read_text())
    assert manifest["models"]["warp_256"]["opset"] == 17


@pytest.mark.parametrize("size", [256, 512])
def test_torch_and_onnxruntime_agree(tmp_path, size):
    entry = export_warp(size, tmp_path)
    dims = warp_dims(size)
    assert parity(dims, tmp_path / entry["file"], example_inputs(dims)) < 1e-3


def test_shipped_models_match_the_code(tmp_path):
    """The ONNX files in streamer/assets are what the current code exports."""
    from importlib import resources

    shipped = json.loads((resources.files("streamer") / "assets" / "manifest.json").read_text())
    for size in (256, 512):
        fresh = export_warp(size, tmp_path)
        old = shipped["models"][f"warp_{size}"]
        assert fresh["inputs"] == old["inputs"] and fresh["outputs"] == old["outputs"]
        assert json.loads(json.dumps(fresh["dims"])) == old["dims"]
        assert fresh["sha256"] == old["sha256"]


def test_shipped_neural_model_is_its_weights_exported():
    """The shipped embedder and generator are what the current code exports from the shipped
    weights (the file fine-tuning starts from), within float rounding, and fit in 50 MB."""
    from importlib import resources

    from export.neural_export import load_weights
    from export.neural_export import parity as neural_parity
    from streamer.renderer import check_file

    assets = resources.files("streamer") / "assets"
    shipped = json.loads((assets / "manifest.json").read_text())["models"]
    if "generator_small" not in shipped:
        pytest.skip("no neural model shipped")
    folder = Path(str(assets))
    paths = {k: check_file(folder, shipped[f"{k}_small"]) for k in ("embedder", "generator",
                                                                      "weights")}
    assert sum(paths[k].stat().st_size for k in ("embedder", "generator")) < 50e6
    E, G, _ = load_weights(paths["weights"])
    assert neural_parity(E, G, paths["embedder"], paths["generator"]) < 1e-3


@pytest.mark.parametrize("precision, psnr_db", [("int8", 33.0), ("fp16", 60.0)])
def test_shipped_generator_in_other_precisions_draws_what_the_float_one_draws(
        astronaut_bgr, precision, psnr_db):
    """The quantized generator the live commands run, and the half-precision one for GPUs,
    agree with the float one on real face windows (the astronaut, never seen in calibration
    or in the check at export)."""
    from export.variants import agreement
    from streamer.neural import NeuralRenderer, neural_available, with_embedding
    from streamer.portrait import EnrollConfig, enroll_images
    from streamer.renderer import RendererConfig, asset_dir, check_file, load_manifest_entry

    other = RendererConfig(precision=precision)
    if not neural_available(other):
        pytest.skip(f"no {precision} generator shipped")
    folder = asset_dir(other)
    files = [check_file(folder, load_manifest_entry(folder, k))
             for k in ("generator_small", f"generator_small_{precision}")]
    portrait = enroll_images([astronaut_bgr], EnrollConfig(crop_size=512))
    portrait = with_embedding(portrait, [astronaut_bgr])
    renderer = NeuralRenderer(portrait)
    feeds = []
    for opening in np.linspace(0.0, 0.1, 6):
        target = portrait.crop_landmarks.copy()
        target[[14, 87, 178, 88, 95, 317, 402, 318, 324], 1] += opening * 512
        feeds.append(renderer.begin(target).feed)
    scores = agreement(*files, feeds)
    assert scores["drawn_psnr_db"] > psnr_db and scores["mask_mean_abs"] < 0.01


def test_a_generator_exports_without_a_warning_to_the_user():
    """`enroll --finetune` exports the fine-tuned generator; the exporter's InstanceNorm
    warning (the model as it runs, train=True) reached the user's screen."""
    import warnings

    from export.neural_export import generator_onnx
    from models.networks import Generator, NeuralDims

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # shown (DeprecationWarning is not)
        assert generator_onnx(Generator(NeuralDims(size=64))).startswith(b"\x08")


def test_calibration_takes_the_folders_own_model(tmp_path, data_dir):
    """export.quantize / export.half calibrate and check --name of --out on that model's own
    inputs: they took the shipped model's whatever the folder (a model of other dimensions
    failed after 25 s of work; one of the same silently got the shipped ψ), and a folder
    without the model failed only after the clips' work."""
    import shutil
    from importlib import resources

    from export.variants import calibration_feeds
    from streamer.errors import ModelFileError

    assets = Path(str(resources.files("streamer") / "assets"))
    folder = tmp_path / "models"
    folder.mkdir()
    manifest = json.loads((assets / "manifest.json").read_text())
    renamed = {}
    for key, entry in manifest["models"].items():
        if key in ("embedder_small", "generator_small", "warp_256", "warp_512"):
            shutil.copy(assets / entry["file"], folder / entry["file"])  # `export` writes
            renamed[key.replace("small", "mine")] = entry  # the warp beside every model
    (folder / "manifest.json").write_text(json.dumps({**manifest, "models": renamed}))
    clip = data_dir / "driving" / "man_green_backdrop.mp4"
    with pytest.raises(ModelFileError, match="embedder_small"):
        calibration_feeds([tmp_path / "no_such_clip.mp4"], folder, "small")
    feeds = calibration_feeds([clip], folder, "mine", per_clip=2, frames=6)
    import onnxruntime as ort

    generator = ort.InferenceSession(str(folder / renamed["generator_mine"]["file"]),
                                     providers=["CPUExecutionProvider"])
    assert len(feeds) == 2 and generator.run(["drawn"], feeds[0])[0].shape[1] == 3


def test_export_checks_its_inputs_before_writing(tmp_path):
    """A corrupt --checkpoint or a --notes that is no JSON object failed after both warps
    had been rewritten into --out (by default the shipped assets)."""
    from export.__main__ import main

    bad = tmp_path / "bad.pt"
    bad.write_text("not a checkpoint")
    out = tmp_path / "out"
    for argv in (["--checkpoint", str(bad)], ["--notes", "notjson"], ["--notes", "[1]"]):
        with pytest.raises(SystemExit) as info:
            main(["--out", str(out), *argv])
        assert info.value.code == 2
    assert not out.exists()
