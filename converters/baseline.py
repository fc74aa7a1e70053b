"""Baselines for what the INT8 recipe buys: the same file decoded by plain argmax.

A model file is self-describing, so swapping the decoder is a metadata edit on a copy
of the file: the weights and graph stay byte-identical, only ``decoder`` changes. That
isolates the decoder's share of the accuracy from the quantization's share.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from sdk.decoders import HEATMAP_DECODERS
from sdk.metadata import DecoderSpec, ModelMetadata

from .formats import writer_of


def copy_with_decoder(path: str | Path, out_path: str | Path, decoder: str = "argmax",
                      params: Mapping[str, Any] | None = None) -> Path:
    """Copy a model file (.onnx, .xml+.bin, .tflite) with its metadata's decoder replaced.

    ``params`` default: the heat-map ``stride`` of the current decoder (all heat-map
    decoders share it). Only heat-map decoders can stand in for one another.
    """
    from sdk.backends import open_backend

    path, out_path = Path(path), Path(out_path)
    meta = open_backend(path).metadata
    if meta.decoder.name not in HEATMAP_DECODERS or decoder not in HEATMAP_DECODERS:
        raise ValueError(f"decoder swap works between heat-map decoders {HEATMAP_DECODERS}; "
                         f"{meta.decoder.name!r} → {decoder!r} is not one of those swaps")
    new_params = dict(params) if params is not None else {"stride": meta.decoder.params["stride"]}
    extra = {**dict(meta.provenance.extra), "decoder_swapped_from": meta.decoder.name}
    new = meta.replace(decoder=DecoderSpec(decoder, new_params),
                       provenance=_with_extra(meta, extra)).validate()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    writer = writer_of(path)
    writer.copy(path, out_path)
    writer.restamp(out_path, new)
    return out_path


def _with_extra(meta: ModelMetadata, extra: dict) -> Any:
    import dataclasses

    return dataclasses.replace(meta.provenance, extra=extra)
