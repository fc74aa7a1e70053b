"""A torch module behind the SDK's Backend interface: the reference every converted file is checked against.

Lives in converters (the SDK never imports torch); the Predictor accepts any Backend instance.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sdk.backends.base import Backend
from sdk.metadata import ModelMetadata


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, module: torch.nn.Module, metadata: ModelMetadata, threads: int | None = None,
                 source: str | Path = "<torch module>"):
        self.module = module.eval()
        self.path = Path(source)
        self.threads = threads
        if threads:
            torch.set_num_threads(threads)
        self.metadata = metadata.validate()

    def _load(self) -> None:  # the module is already in memory
        pass

    def _read_metadata(self) -> ModelMetadata:
        return self.metadata

    def output_names(self) -> list[str]:
        return [o.name for o in self.metadata.outputs]

    def run(self, tensor: np.ndarray, to_image: np.ndarray | None = None) -> dict[str, np.ndarray]:
        if to_image is not None:  # an eager module maps nothing back
            self.image_map(len(tensor), to_image)  # raises, naming the file
        with torch.inference_mode():
            outs = self.module(torch.from_numpy(np.ascontiguousarray(tensor, dtype=np.float32)))
        outs = outs if isinstance(outs, (tuple, list)) else (outs,)
        return {n: o.float().numpy() for n, o in zip(self.output_names(), outs)}
