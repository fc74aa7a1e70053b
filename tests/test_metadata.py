"""Metadata: validation with clear errors, JSON round trip, and round trip through an ONNX file."""
from __future__ import annotations

import json

import pytest

from sdk.metadata import (CropRule, DecoderSpec, InputSpec, LandmarkScheme, MetadataError, ModelMetadata, OutputSpec)
from sdk.schemes import SCHEMES


def make_meta(**changes) -> ModelMetadata:
    meta = ModelMetadata(
        scheme=SCHEMES["wflw98"],
        input=InputSpec(name="input", width=128, height=128),
        crop=CropRule(expand=1.25, side_mode="max_wh_plus1"),
        decoder=DecoderSpec("h3r_topk", {"stride": 4, "topk": 9}),
        outputs=(OutputSpec("heatmap", "heatmap", (98, 32, 32)),),
    )
    return meta.replace(**changes)


def test_json_round_trip_is_exact():
    meta = make_meta().validate()
    again = ModelMetadata.from_json(meta.to_json())
    assert again == meta
    assert again.scheme.to68 == SCHEMES["wflw98"].to68


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.pop("decoder"), "missing the field 'decoder'"),
    (lambda d: d["decoder"].update(name="nope"), "decoder 'nope' is unknown"),
    (lambda d: d["decoder"]["params"].pop("stride"), "decoder parameters missing: ['stride']"),
    (lambda d: d["decoder"]["params"].update(sigma=3), "unknown decoder parameters"),
    (lambda d: d["input"].update(layout="chwn"), "input.layout"),
    (lambda d: d["input"].update(width=0), "input size must be positive"),
    (lambda d: d["crop"].update(side_mode="huge"), "crop.side_mode"),
    (lambda d: d["outputs"][0].update(role="logits"), "output role 'logits'"),
    (lambda d: d.update(outputs=[]), "lists no outputs"),
    (lambda d: d["scheme"].update(flip_pairs=[[0, 200]]), "flip_pairs"),
    (lambda d: d.update(schema_version=99), "schema version 99"),
    (lambda d: d["input"].update(colour="rgb"), "unknown fields in InputSpec"),
])
def test_invalid_metadata_names_the_problem(mutate, message):
    data = make_meta().to_dict()
    mutate(data)
    with pytest.raises(MetadataError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")):
        ModelMetadata.from_json(json.dumps(data))


def test_decoder_needs_its_output_roles():
    meta = make_meta(decoder=DecoderSpec("pipnet", {"stride": 32, "num_neighbours": 10,
                                                    "reverse_index1": [[0]], "reverse_index2": [[0]]}))
    with pytest.raises(MetadataError, match="needs outputs with roles"):
        meta.validate()


@pytest.mark.parametrize("text", [None, "", "{not json", "[1, 2]"])
def test_absent_or_garbage_metadata(text):
    with pytest.raises(MetadataError):
        ModelMetadata.from_json(text)


def test_flip_permutation_is_an_involution():
    for scheme in SCHEMES.values():
        perm = scheme.flip_permutation()
        assert [perm[p] for p in perm] == list(range(scheme.num_points))


def test_custom_scheme_validation():
    with pytest.raises(MetadataError, match="to68 must list 68"):
        LandmarkScheme("x", 10, (), tuple(range(10))).validate()


def test_round_trip_through_onnx_file(tiny_onnx):
    import onnx

    from converters.onnx_io import read_metadata
    from sdk.backends import open_backend

    embedded = read_metadata(onnx.load(str(tiny_onnx)))
    backend = open_backend(tiny_onnx)
    assert backend.metadata == embedded
    assert backend.metadata.input.width == 64
    assert backend.metadata.provenance.architecture == "h3r_mobilenetv2"
