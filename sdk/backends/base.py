"""The one interface every inference runtime adapter implements.

An adapter loads a file, exposes the metadata embedded in it and runs a float
batch in the model's own layout, returning float outputs keyed by tensor name
(dequantised where the file has quantised outputs). Matching names to roles and
layouts is not the adapter's job (see ``sdk.outputs``).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from ..decoders import MAPS_BACK, TO_IMAGE_INPUT
from ..errors import InputError, MetadataError, ModelLoadError
from ..formats import RUNTIMES
from ..metadata import ModelMetadata


class Backend(ABC):
    """``name`` is the runtime's name in the format table (``sdk.formats``), which supplies the
    adapter's file extensions and whether one loaded model may be run from several threads."""

    name: str = "abstract"
    extensions: tuple[str, ...] = ()
    thread_safe: bool = False
    # The name of the file's map input (``sdk.decoders.TO_IMAGE_INPUT``) when its graph maps points back
    # to image pixels, else None; the adapter sets it in ``_load``.
    map_input: str | None = None

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        fmt = RUNTIMES.get(cls.name)
        if fmt is not None:
            cls.extensions, cls.thread_safe = fmt.extensions, fmt.thread_safe

    def __init__(self, path: str | Path, threads: int | None = None, metadata: ModelMetadata | None = None,
                 *, raw: bool = False):
        """``raw=True`` opens a network that carries no edgemark metadata (the face detector's):
        ``metadata`` is then None and callers read outputs by name or shape themselves."""
        self.path = Path(path)
        if self.path.is_dir():
            raise ModelLoadError(f"{self.path} is a folder, not a model file")
        if not self.path.is_file():
            raise ModelLoadError(f"model file not found: {self.path}")
        if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
            raise InputError(f"threads must be a positive integer or None, got {threads!r}")
        self.threads = threads
        self._override = metadata
        self._load()
        self.metadata: ModelMetadata | None = None if raw else (metadata or self._read_metadata()).validate()
        if self.metadata is not None:
            from ..consistency import check_model

            try:
                check_model(self.metadata, self.input_shape(), self.output_shapes())
            except MetadataError as exc:
                raise MetadataError(f"{self.path}: {exc}") from None
            if bool(self.metadata.decoder.params.get(MAPS_BACK)) != (self.map_input is not None):
                says = "maps points back in its graph" if self.map_input is None else "does not map points back"
                raise MetadataError(f"{self.path}: the metadata says the file {says}, but the graph "
                                    f"{'lacks' if self.map_input is None else 'has'} the input {TO_IMAGE_INPUT!r}")

    @abstractmethod
    def _load(self) -> None:
        """Open the file with the runtime; raise ModelLoadError naming the file when that fails."""

    @abstractmethod
    def _read_metadata(self) -> ModelMetadata:
        """Parse the edgemark metadata embedded in the file (MetadataError when absent or bad)."""

    @abstractmethod
    def run(self, tensor: np.ndarray, to_image: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Run one batch; return float32 outputs keyed by the file's output tensor names.

        ``to_image``: the (N, 2, 2) map input of a file that maps back in its graph (``map_input``);
        None gives it the identity, so its points come back in input pixels as every other file's do.
        """

    def image_map(self, n: int, to_image: np.ndarray | None) -> np.ndarray:
        """The map input for a batch of ``n``: ``to_image`` checked, or the identity (scale 1, offset 0)."""
        if self.map_input is None:
            if to_image is not None:
                raise InputError(f"{self.path.name} does not map points back in its graph: it takes no to_image")
            return None  # type: ignore[return-value]
        if to_image is None:
            ident = np.zeros((n, 2, 2), np.float32)
            ident[:, 0] = 1.0
            return ident
        if not (isinstance(to_image, np.ndarray) and to_image.dtype == np.float32 and to_image.shape == (n, 2, 2)):
            raise InputError(f"to_image must be a float32 array shaped ({n}, 2, 2) for {n} faces, got "
                             f"{getattr(to_image, 'dtype', type(to_image).__name__)} {np.shape(to_image)}")
        return to_image

    @abstractmethod
    def output_names(self) -> list[str]:
        """Output tensor names in the file, in the runtime's order."""

    def input_shape(self) -> tuple[int | None, ...] | None:
        """The input's per-sample shape in the file's layout (None = a dimension or the whole shape unknown)."""
        return None

    def output_shapes(self) -> dict[str, tuple[int | None, ...]]:
        """Per-sample output shapes by output name, where the file states them."""
        return {}

    @staticmethod
    def as_pixels(tensor: np.ndarray) -> np.ndarray:
        """A batch for a file whose input is uint8 pixels (its graph normalises, ``converters.graph_input``):
        uint8 as it is; float pixel values (whole numbers in 0..255) cast; anything else — a tensor already
        normalised, say — is refused rather than wrapped around."""
        if tensor.dtype == np.uint8:
            return tensor
        values = np.asarray(tensor)
        if values.size and not (np.all(values == np.round(values)) and values.min() >= 0 and values.max() <= 255):
            raise InputError("this model takes uint8 pixels (its graph normalises them); got values that are not "
                             "whole numbers in 0..255 — pass the crops themselves, not a normalised tensor")
        return values.astype(np.uint8)

    @staticmethod
    def run_in_chunks(tensor: np.ndarray, step: int, infer, to_image: np.ndarray | None = None) -> list[np.ndarray]:
        """Run ``infer(part) -> [outputs]`` on chunks of ``step`` faces and concatenate per output.

        For files with a static batch: the last chunk is padded by repeating its last face,
        and the padding's outputs are dropped. ``to_image``: the map input, chunked alongside
        (``infer(part, maps)``).
        """
        chunks = []
        for start in range(0, len(tensor), step):
            parts = [tensor[start:start + step]] + ([] if to_image is None else [to_image[start:start + step]])
            n = len(parts[0])
            if n < step:
                parts = [np.concatenate([a, np.repeat(a[-1:], step - n, axis=0)]) for a in parts]
            chunks.append([np.asarray(o)[:n] for o in infer(*parts)])
        return [np.concatenate([c[i] for c in chunks]).astype(np.float32, copy=False) for i in range(len(chunks[0]))]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, threads={self.threads})"
