"""Architecture registry (timm-style): one ``ArchSpec`` per model name.

A spec knows how to build the network and how to describe it: the metadata it
produces is what every later stage (conversion, runtime, benchmarks) reads, so the
numbers that tie a network to its decoder live here and nowhere else.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
from torch import Tensor, nn

from sdk.errors import EdgemarkError
from sdk.metadata import CropRule, DecoderSpec, InputSpec, ModelMetadata, OutputSpec, Provenance
from sdk.schemes import scheme_for_points

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class UnknownArchitectureError(EdgemarkError, KeyError):
    """No architecture is registered under the requested name."""

    def __str__(self) -> str:  # KeyError would print the message repr-quoted
        return str(self.args[0]) if self.args else ""


def downsampled(size: int, halvings: int) -> int:
    """Feature-map side after ``halvings`` stride-2 stages (each pads so the side rounds up)."""
    for _ in range(halvings):
        size = (size + 1) // 2
    return size


def _infer_nothing(state_dict: Mapping[str, Tensor]) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class ArchSpec:
    """How to build one architecture and describe it in model metadata.

    ``options`` lists every option the architecture accepts with its default;
    ``decoder_options`` are the ones that only parameterise the decoder (never the
    network). ``output_shapes(num_points, input_size, **options)`` gives the per-sample
    shape of each output in ``output_roles`` order; ``decoder(num_points, meanface,
    **options)`` gives the DecoderSpec; ``infer_options(state_dict)`` reads what it can
    (``num_points`` and structural options) from a checkpoint's tensor shapes.
    """

    name: str
    builder: Callable[..., nn.Module]
    output_roles: tuple[str, ...]
    output_shapes: Callable[..., tuple[tuple[int, ...], ...]]
    decoder: Callable[..., DecoderSpec]
    crop: CropRule
    default_input_size: int
    default_num_points: int
    options: Mapping[str, Any] = field(default_factory=dict)
    decoder_options: tuple[str, ...] = ()
    infer_options: Callable[[Mapping[str, Tensor]], dict[str, Any]] = _infer_nothing
    description: str = ""
    # The rule edgemark's own trainer crops with (plain warps, no rounding): files it trains keep
    # it, while ``crop`` is what a checkpoint of this architecture is converted with.
    training_crop: CropRule | None = None

    @property
    def trainer_crop(self) -> CropRule:
        return self.crop if self.training_crop is None else self.training_crop

    def resolve(self, num_points: int | None, input_size: int | None,
                options: Mapping[str, Any]) -> tuple[int, int, dict[str, Any]]:
        """Fill defaults and reject options this architecture does not have."""
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise ValueError(f"architecture {self.name!r} has no option(s) {unknown}; "
                             f"known: {sorted(self.options) or 'none'}")
        n = self.default_num_points if num_points is None else int(num_points)
        s = self.default_input_size if input_size is None else int(input_size)
        if n < 1 or s < 1:
            raise ValueError(f"num_points and input_size must be positive, got {n} and {s}")
        return n, s, {**self.options, **options}

    def build(self, num_points: int | None = None, input_size: int | None = None, **options: Any) -> nn.Module:
        """A freshly initialised network; ``model.arch_config`` records what it was built with."""
        n, s, opts = self.resolve(num_points, input_size, options)
        structural = {k: v for k, v in opts.items() if k not in self.decoder_options}
        model = self.builder(n, s, **structural)
        model.arch_config = {"num_points": n, "input_size": s, **structural}
        return model

    def make_metadata(self, num_points: int | None = None, input_size: int | None = None,
                      meanface: np.ndarray | None = None, crop: CropRule | None = None,
                      **options: Any) -> ModelMetadata:
        """Complete, validated metadata for this architecture at this size (``crop`` overrides the rule)."""
        n, s, opts = self.resolve(num_points, input_size, options)
        shapes = self.output_shapes(n, s, **opts)
        outputs = tuple(OutputSpec(name=role, role=role, shape=tuple(shape))
                        for role, shape in zip(self.output_roles, shapes, strict=True))
        meta = ModelMetadata(
            scheme=scheme_for_points(n),
            input=InputSpec(name="input", width=s, height=s, color="rgb", mean=IMAGENET_MEAN, std=IMAGENET_STD,
                            layout="nchw"),
            crop=self.crop if crop is None else crop,
            decoder=self.decoder(n, meanface, **opts),
            outputs=outputs,
            provenance=Provenance(architecture=self.name, extra={"options": opts}),
        )
        return meta.validate()


_REGISTRY: dict[str, ArchSpec] = {}


def register(spec: ArchSpec) -> ArchSpec:
    """Add ``spec``; names are unique so a model file always maps to one network."""
    if spec.name in _REGISTRY:
        raise ValueError(f"architecture {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def get_arch(name: str) -> ArchSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownArchitectureError(f"unknown architecture {name!r}; known: {', '.join(list_archs())}") from None


def list_archs() -> list[str]:
    return sorted(_REGISTRY)


def load_meanface(path: str | Path) -> np.ndarray:
    """PIPNet mean face file (2L whitespace-separated floats, x y interleaved) → (L, 2) float64."""
    values = Path(path).read_text().split()
    try:
        flat = np.array([float(v) for v in values], dtype=np.float64)
    except ValueError as exc:
        raise ValueError(f"{path}: not a mean-face file ({exc})") from None
    if flat.size == 0 or flat.size % 2:
        raise ValueError(f"{path}: a mean face needs an even, non-zero count of numbers, got {flat.size}")
    return flat.reshape(-1, 2)
