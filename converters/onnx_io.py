"""Reading and writing edgemark metadata in ONNX files (``metadata_props``)."""
from __future__ import annotations

from pathlib import Path

import onnx

from sdk.metadata import METADATA_KEY, MetadataError, ModelMetadata


def embed_metadata(model: onnx.ModelProto, meta: ModelMetadata) -> onnx.ModelProto:
    """Store ``meta`` under the ``edgemark`` key, replacing any earlier copy."""
    meta.validate()
    kept = [p for p in model.metadata_props if p.key != METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, meta.to_json()
    return model


def read_metadata(model: onnx.ModelProto | str | Path) -> ModelMetadata:
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model), load_external_data=False)
    for prop in model.metadata_props:
        if prop.key == METADATA_KEY:
            return ModelMetadata.from_json(prop.value)
    raise MetadataError("the ONNX model carries no edgemark metadata")


def save_onnx(model: onnx.ModelProto, path: str | Path) -> None:
    """Check and write an ONNX model atomically."""
    from sdk.atomic import atomic_paths

    onnx.checker.check_model(model)
    with atomic_paths(path) as (tmp,):
        onnx.save(model, str(tmp))
