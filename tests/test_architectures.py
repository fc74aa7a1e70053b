"""Architectures, registry metadata and strict checkpoint loading (small inputs: runs in seconds)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from sdk.metadata import OFFICIAL_CROPS

torch = pytest.importorskip("torch")

from converters.architectures import UnknownArchitectureError, get_arch, list_archs, load_meanface  # noqa: E402
from converters.architectures.mobilenetv2 import MobileNetV2  # noqa: E402
from converters.architectures.resnet import ResNet  # noqa: E402
from converters.checkpoints import (CheckpointError, CheckpointMismatchError, build_from_checkpoint,  # noqa: E402
                                    load_checkpoint, read_state_dict)
from sdk.decoders import decode  # noqa: E402
from sdk.metadata import ModelMetadata  # noqa: E402
from sdk.schemes import WFLW98_TO_68  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EDGEMARK_SHARED", REPO.parent / "shared"))
H3R_DIR = SHARED / "weights" / "h3r"
MEANFACE = SHARED / "weights" / "pipnet-meanface" / "WFLW.txt"
AFLW2000 = SHARED / "data" / "aflw2000-3d"

needs_h3r = pytest.mark.skipif(not (H3R_DIR / "wflw_mobilenetv2_128" / "model.pth").is_file(),
                               reason=f"H3R checkpoints not found under {H3R_DIR} (set EDGEMARK_SHARED)")
needs_meanface = pytest.mark.skipif(not MEANFACE.is_file(), reason=f"PIPNet mean face not found: {MEANFACE}")


def h3r_path(size: int) -> Path:
    return H3R_DIR / f"wflw_mobilenetv2_{size}" / "model.pth"


def run(model: torch.nn.Module, size: int) -> tuple[torch.Tensor, ...]:
    torch.manual_seed(0)
    with torch.inference_mode():
        out = model.eval()(torch.randn(1, 3, size, size))
    return out if isinstance(out, tuple) else (out,)


@pytest.fixture(scope="module")
def meanface() -> np.ndarray:
    if not MEANFACE.is_file():
        pytest.skip(f"PIPNet mean face not found: {MEANFACE}")
    return load_meanface(MEANFACE)


@pytest.fixture(scope="module")
def fake_meanface() -> np.ndarray:
    """Metadata tests only need some 98-point shape, not the real one."""
    return np.random.default_rng(0).random((98, 2))


# --- backbones ---------------------------------------------------------------------------------
@pytest.mark.parametrize("depth, params", [(18, 11_176_512), (50, 23_508_032)])
def test_resnet_matches_torchvision(depth: int, params: int) -> None:
    net = ResNet(depth)
    assert sum(p.numel() for p in net.parameters()) == params  # torchvision's count minus fc
    keys = set(net.state_dict())
    assert {"conv1.weight", "bn1.running_var", "layer2.0.downsample.0.weight", "layer4.1.bn2.weight"} <= keys


def test_mobilenetv2_layouts() -> None:
    tv = MobileNetV2()
    assert sum(p.numel() for p in tv.parameters()) == 2_223_872  # torchvision's features
    keys = set(tv.state_dict())
    assert {"features.1.conv.0.0.weight", "features.1.conv.1.weight", "features.2.conv.1.1.weight",
            "features.2.conv.3.running_mean", "features.18.0.weight"} <= keys
    flat = MobileNetV2(14, layout="flat")
    flat_keys = set(flat.state_dict())
    assert {"features.1.conv.3.weight", "features.2.conv.7.weight", "features.13.conv.6.weight"} <= flat_keys


# --- H3R ---------------------------------------------------------------------------------------
@needs_h3r
@pytest.mark.parametrize("size", [128, 160, 256])
def test_h3r_official_checkpoints_load_strict(size: int) -> None:
    model, spec = build_from_checkpoint("h3r_mobilenetv2", h3r_path(size), input_size=size)
    assert spec.name == "h3r_mobilenetv2" and model.arch_config["num_points"] == 98
    (out,) = run(model, size)
    assert out.shape == (1, 98, size // 4, size // 4)
    assert spec.make_metadata(**model.arch_config).outputs[0].shape == tuple(out.shape[1:])


@needs_h3r
def test_h3r_returns_the_decoded_half() -> None:
    model, _ = build_from_checkpoint("h3r_mobilenetv2", h3r_path(128), input_size=128)
    x = torch.randn(1, 3, 128, 128)
    with torch.inference_mode():
        full = model.heatmap_head["head"](model.backbone(x))
        assert torch.equal(model(x), full.view(1, 2, 98, 32, 32)[:, 1])


@needs_h3r
def test_h3r_on_a_real_face() -> None:
    cv2 = pytest.importorskip("cv2")
    if not (AFLW2000 / "names.txt").is_file():
        pytest.skip(f"AFLW2000-3D not found under {AFLW2000}")
    name = (AFLW2000 / "names.txt").read_text().split()[0]
    gt = np.load(AFLW2000 / "landmarks68_reannotated.npy")[0]
    image = cv2.imread(str(AFLW2000 / "images" / name))[:, :, ::-1]
    size = 128
    model, spec = build_from_checkpoint("h3r_mobilenetv2", h3r_path(size), input_size=size)
    meta = spec.make_metadata(**model.arch_config)
    (x1, y1), (x2, y2) = gt.min(0), gt.max(0)
    scale = size / (max(x2 - x1 + 1, y2 - y1 + 1) * 1.25)
    shift = (size - 1) / 2 - scale * np.array([(x1 + x2) / 2, (y1 + y2) / 2])
    warp = np.array([[scale, 0, shift[0]], [0, scale, shift[1]]], dtype=np.float32)
    crop = cv2.warpAffine(np.ascontiguousarray(image), warp, (size, size), flags=cv2.INTER_LINEAR)
    tensor = ((crop / 255.0 - meta.input.mean) / meta.input.std).astype(np.float32).transpose(2, 0, 1)[None]
    with torch.inference_mode():
        heat = model(torch.from_numpy(tensor)).numpy()
    landmarks, _ = decode(meta.decoder.name, {"heatmap": heat}, meta.decoder.params)
    error = np.linalg.norm(landmarks[0, list(WFLW98_TO_68)] - (gt * scale + shift), axis=1).mean()
    assert error <= 8.0, f"mean error {error:.2f} input px"


@needs_h3r
@pytest.mark.parametrize("arch", ["shr_mobilenetv2", "pipnet_light"])
def test_light_models_share_the_h3r_trunk(arch: str) -> None:
    trunk = {k: v for k, v in read_state_dict(h3r_path(128)).items() if k.startswith("backbone.")}
    missing, unexpected = get_arch(arch).build().load_state_dict(trunk, strict=False)
    assert not unexpected and not any(k.startswith("backbone.") for k in missing)


# --- PIPNet ------------------------------------------------------------------------------------
@needs_meanface
@pytest.mark.parametrize("arch, options", [("pipnet_resnet18", {"net_stride": s}) for s in (16, 32, 64, 128)]
                         + [("pipnet_mobilenetv2", {}), ("pipnet_light", {})])
def test_pipnet_roundtrip_and_decode(arch: str, options: dict, meanface: np.ndarray, tmp_path: Path) -> None:
    size = 64
    spec = get_arch(arch)
    model = spec.build(98, size, **options)
    path = tmp_path / "epoch59.pth"
    torch.save(model.state_dict(), path)
    assert {"cls_layer.weight", "x_layer.bias", "nb_y_layer.weight"} <= set(torch.load(path, weights_only=True))
    expected = run(model, size)

    again = load_checkpoint(spec.build(98, size, **options), path, arch)
    assert all(torch.equal(a, b) for a, b in zip(run(again, size), expected))

    loaded, _ = build_from_checkpoint(arch, path, input_size=size)  # stride and sizes come from the shapes
    assert loaded.arch_config == model.arch_config
    outs = run(loaded, size)
    meta = spec.make_metadata(meanface=meanface, **loaded.arch_config)
    assert [o.shape for o in meta.outputs] == [tuple(t.shape[1:]) for t in outs]
    landmarks, scores = decode("pipnet", {o.role: t.numpy() for o, t in zip(meta.outputs, outs)}, meta.decoder.params)
    assert landmarks.shape == (1, 98, 2) and scores.shape == (1, 98)
    assert np.isfinite(landmarks).all()


@needs_h3r
def test_h3r_checkpoint_into_pipnet_is_a_mismatch() -> None:
    with pytest.raises(CheckpointMismatchError) as info:
        load_checkpoint(get_arch("pipnet_resnet18").build(98, 64), h3r_path(128), "pipnet_resnet18")
    message = str(info.value)
    for fragment in ("pipnet_resnet18", "model.pth", "missing keys", "unexpected keys", "conv1.weight",
                     "backbone.features.0.0.weight", "more)"):
        assert fragment in message
    with pytest.raises(CheckpointMismatchError, match="pipnet_mobilenetv2"):
        build_from_checkpoint("pipnet_mobilenetv2", h3r_path(128))


def test_shape_mismatch_is_listed(tmp_path: Path) -> None:
    path = tmp_path / "shr.pth"
    torch.save(get_arch("shr_mobilenetv2").build(21, 64).state_dict(), path)
    with pytest.raises(CheckpointMismatchError, match=r"shape mismatches \(2\).*\(21, 152, 1, 1\)"):
        load_checkpoint(get_arch("shr_mobilenetv2").build(98, 64), path, "shr_mobilenetv2")
    model, _ = build_from_checkpoint("shr_mobilenetv2", path)  # inferred from the head instead
    assert model.arch_config["num_points"] == 21


# --- checkpoint files --------------------------------------------------------------------------
def test_wrapped_and_prefixed_checkpoints_load(tmp_path: Path) -> None:
    spec = get_arch("shr_mobilenetv2")
    model = spec.build(5, 32)
    state = model.state_dict()
    for wrapped in ({"state_dict": state, "epoch": 3}, {"model": {f"module.{k}": v for k, v in state.items()}}):
        path = tmp_path / "wrapped.pth"
        torch.save(wrapped, path)
        again = load_checkpoint(spec.build(5, 32), path, spec.name)
        assert all(torch.equal(a, b) for a, b in zip(run(again, 32), run(model, 32)))


def test_corrupt_checkpoint_names_the_file(tmp_path: Path) -> None:
    good = tmp_path / "good.pth"
    torch.save({"w": torch.zeros(4096)}, good)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated.pth"):
        load_checkpoint(get_arch("shr_mobilenetv2").build(5, 32), truncated, "shr_mobilenetv2")
    with pytest.raises(CheckpointError, match="truncated.pth"):
        build_from_checkpoint("h3r_mobilenetv2", truncated)
    not_weights = tmp_path / "list.pth"
    torch.save([1, 2, 3], not_weights)
    with pytest.raises(CheckpointError, match="no state dict"):
        read_state_dict(not_weights)


# --- registry ----------------------------------------------------------------------------------
def test_unknown_architecture() -> None:
    with pytest.raises(UnknownArchitectureError, match="h3r_mobilenetv2") as info:
        get_arch("pipnet_resnet9000")
    assert isinstance(info.value, KeyError) and "pipnet_resnet9000" in str(info.value)
    with pytest.raises(UnknownArchitectureError):
        build_from_checkpoint("nope", "whatever.pth")


def test_registry_lists_every_architecture() -> None:
    assert set(list_archs()) == {"h3r_mobilenetv2", "shr_mobilenetv2", "pipnet_resnet18", "pipnet_resnet50",
                                 "pipnet_resnet101", "pipnet_mobilenetv2", "pipnet_light"}


@pytest.mark.parametrize("arch", ["h3r_mobilenetv2", "shr_mobilenetv2", "pipnet_resnet18", "pipnet_resnet50",
                                  "pipnet_resnet101", "pipnet_mobilenetv2", "pipnet_light"])
def test_metadata_validates_and_roundtrips(arch: str, fake_meanface: np.ndarray) -> None:
    spec = get_arch(arch)
    meta = spec.make_metadata(meanface=fake_meanface if arch.startswith("pipnet") else None)
    assert meta.validate() is meta
    assert ModelMetadata.from_json(meta.to_json()) == meta
    assert tuple(o.role for o in meta.outputs) == spec.output_roles
    assert meta.scheme.name == "wflw98" and meta.input.width == spec.default_input_size
    assert meta.provenance.architecture == arch


def test_metadata_per_method(fake_meanface: np.ndarray) -> None:
    h3r = get_arch("h3r_mobilenetv2").make_metadata(98, 160)
    assert (h3r.decoder.name, dict(h3r.decoder.params)) == ("h3r_topk", {"stride": 4, "topk": 9})
    assert h3r.crop == OFFICIAL_CROPS["h3r"]  # official checkpoints: the official geometry
    assert get_arch("h3r_mobilenetv2").trainer_crop.coordinate_origin == "pixel_center"  # what our trainer writes
    assert h3r.outputs[0].shape == (98, 40, 40)
    shr = get_arch("shr_mobilenetv2").make_metadata(21, 128, temperature=0.5)
    assert dict(shr.decoder.params) == {"stride": 4, "window": 5, "temperature": 0.5}
    assert shr.scheme.name == "aflw21"
    pip = get_arch("pipnet_resnet18").make_metadata(98, 256, meanface=fake_meanface, net_stride=16)
    assert pip.decoder.params["stride"] == 16 and pip.output_for("nb_x").shape == (980, 16, 16)
    assert pip.crop == OFFICIAL_CROPS["pipnet"]
    assert (pip.crop.expand, pip.crop.side_mode, pip.crop.rounding, pip.crop.clip) == (1.2, "per_axis", "floor", True)
    light = get_arch("pipnet_light").make_metadata(98, 128, meanface=fake_meanface)
    assert light.crop.is_plain and light.crop.side_mode == "max_wh"  # edgemark's own model: its trainer's rule


def test_metadata_errors(fake_meanface: np.ndarray) -> None:
    with pytest.raises(ValueError, match="mean face"):
        get_arch("pipnet_resnet18").make_metadata()
    with pytest.raises(ValueError, match="68"):
        get_arch("pipnet_resnet18").make_metadata(68, meanface=fake_meanface)
    with pytest.raises(ValueError, match="net_stride"):
        get_arch("h3r_mobilenetv2").make_metadata(net_stride=8)
    with pytest.raises(ValueError, match="net_stride"):
        get_arch("pipnet_resnet18").build(98, 64, net_stride=8)


def test_load_meanface(tmp_path: Path) -> None:
    odd = tmp_path / "odd.txt"
    odd.write_text("0.1 0.2 0.3")
    with pytest.raises(ValueError, match="even"):
        load_meanface(odd)
    if MEANFACE.is_file():
        assert load_meanface(MEANFACE).shape == (98, 2)
