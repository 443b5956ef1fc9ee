import hashlib
import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from export.onnx_export import example_inputs, export_warp, parity, warp_dims, write_manifest  # noqa: E402


def test_export_writes_a_checked_model_and_manifest(tmp_path):
    entry = export_warp(256, tmp_path)
    path = tmp_path / entry["file"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
    assert [i["name"] for i in entry["inputs"]] == [
        "ctrl", "tps", "mouth_poly", "mouth_frame", "mouth_box", "fine_boxes", "colors"]
    assert [o["name"] for o in entry["outputs"]] == ["flow", "mouth", "fine_flow"]
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
