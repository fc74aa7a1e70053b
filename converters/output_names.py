"""Which tensor of a converted model is which metadata output: converters rename and reorder outputs."""
from __future__ import annotations

import dataclasses
import logging

from sdk.metadata import MetadataError, ModelMetadata, OutputSpec

log = logging.getLogger(__name__)


def reconcile_outputs(meta: ModelMetadata, actual: list[tuple[set[str], tuple[int | None, ...]]]) -> ModelMetadata:
    """Point each OutputSpec at the tensor name the converted model really has.

    ``actual``: (names, full shape with batch) per output. A name that survives is kept;
    otherwise the unique output with the spec's per-sample shape is taken, or the only
    output when there is one. Anything else is an error: guessing would mislabel roles.
    """
    specs = []
    taken: set[int] = set()
    for spec in meta.outputs:
        hits = [i for i, (names, _) in enumerate(actual) if spec.name in names]
        if not hits and spec.shape is not None:
            hits = [i for i, (_, shape) in enumerate(actual)
                    if i not in taken and len(shape) == len(spec.shape) + 1
                    and all(s is None or a is None or s == a for s, a in zip(spec.shape, shape[1:]))]
        if not hits and len(actual) == len(meta.outputs) == 1:
            hits = [0]
        if len(hits) != 1:
            raise MetadataError(f"cannot tell which converted output is {spec.name!r} (role {spec.role}): "
                                f"outputs are {[sorted(n) for n, _ in actual]}")
        taken.add(hits[0])
        names, _ = actual[hits[0]]
        if not names:
            raise MetadataError(f"the converted output for {spec.name!r} (role {spec.role}) has no tensor name")
        name = spec.name if spec.name in names else sorted(names)[0]
        if name != spec.name:
            log.info("output %r is called %r in the converted model", spec.name, name)
        specs.append(_renamed(spec, name))
    return meta.replace(outputs=tuple(specs))


def _renamed(spec: OutputSpec, name: str) -> OutputSpec:
    return dataclasses.replace(spec, name=name)
