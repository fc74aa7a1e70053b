"""torch → ONNX: fidelity on real crops, atomic writes, CLI, clear errors for wrong checkpoints."""
from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch", reason="workstation stack (pip install './tools[convert]'); the runtime tests run without it")
import torch

from converters.api import ConversionError, convert, load_source
from sdk.atomic import atomic_paths
from converters.checkpoints import CheckpointMismatchError
from edgemark_cli import main


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    from converters.architectures import get_arch

    torch.manual_seed(0)
    model = get_arch("shr_mobilenetv2").build(98, 64)
    path = tmp_path_factory.mktemp("ckpt") / "tiny_shr.pth"
    torch.save(model.state_dict(), path)
    return path


def test_convert_tiny_checkpoint_verifies_on_real_faces(tiny_checkpoint, tmp_path, shared_dir):
    source = load_source(tiny_checkpoint, arch="shr_mobilenetv2", input_size=64)
    (result,) = convert(source, ["onnx"], tmp_path)
    assert result.path.name == "shr_mobilenetv2_64_fp32.onnx"
    assert result.fidelity.faces == 16 and result.fidelity.mean_px < 0.01
    assert not list(tmp_path.glob("*.partial*"))


def test_export_has_dynamic_batch(tiny_onnx):
    import onnx

    dim = onnx.load(str(tiny_onnx)).graph.input[0].type.tensor_type.shape.dim[0]
    assert dim.dim_param == "batch"


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "model.onnx"
    with pytest.raises(RuntimeError):
        with atomic_paths(target) as (tmp,):
            tmp.write_bytes(b"half a model")
            raise RuntimeError("converter crashed")
    assert list(tmp_path.iterdir()) == []


def test_failed_export_writes_no_file(tmp_path):
    from converters.architectures import get_arch
    from converters.to_onnx import export_onnx

    class Broken(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("boom")

    meta = get_arch("h3r_mobilenetv2").make_metadata(98, 64)
    with pytest.raises(RuntimeError, match="boom"):
        export_onnx(Broken(), meta, tmp_path / "broken.onnx")
    assert list(tmp_path.iterdir()) == []


def test_wrong_checkpoint_for_arch_lists_keys(tiny_checkpoint):
    with pytest.raises(CheckpointMismatchError, match="(?s)missing.*unexpected"):
        load_source(tiny_checkpoint, arch="pipnet_resnet18")


def test_checkpoint_needs_arch(tiny_checkpoint):
    with pytest.raises(ConversionError, match="--arch"):
        load_source(tiny_checkpoint)


def test_cli_convert_and_predict(tiny_checkpoint, tmp_path, capsys, shared_dir):
    rc = main(["convert", str(tiny_checkpoint), "--arch", "shr_mobilenetv2", "--input-size", "64",
               "--to", "onnx", "--out", str(tmp_path), "--json"])
    assert rc == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["format"] == "onnx" and rows[0]["size_mb"] > 0 and "mean_diff_px" in rows[0]
    import cv2

    img = tmp_path / "face.png"
    cv2.imwrite(str(img), np.full((80, 90, 3), 128, np.uint8))
    out_json = tmp_path / "lm.json"
    rc = main(["predict", str(img), "--model", rows[0]["file"], "--box", "5", "5", "70", "75",
               "--json", str(out_json), "--out", str(tmp_path / "annotated.png")])
    assert rc == 0
    faces = json.loads(out_json.read_text())["faces"]
    assert np.asarray(faces[0]["landmarks"]).shape == (98, 2)
    assert (tmp_path / "annotated.png").is_file()


def test_cli_unknown_arch_is_a_clear_error(tiny_checkpoint, capsys):
    rc = main(["convert", str(tiny_checkpoint), "--arch", "resnet9000", "--out", "/tmp/unused"])
    assert rc == 2
    assert "resnet9000" in capsys.readouterr().err


def test_cli_eval_json(h3r_onnx, capsys):
    rc = main(["eval", "--model", str(h3r_onnx), "--dataset", "aflw2000-3d", "--limit", "10", "--json"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    assert report["count"] == 10 and set(report["nme_bins"]) == {"0-30", "30-60", "60-90"}
    assert {"nme", "nme_bin_mean", "fr_10", "auc_10"} <= set(report)

