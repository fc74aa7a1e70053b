"""Peers: what a user would get without edgemark, measured on the same machine in the same run.

* ``torch_eager`` — the trained network in PyTorch eager mode with the authors' decoding,
  run through the same crop/decode/mapping path (a :class:`TorchBackend` inside a Predictor),
  so the only difference is the runtime.
* ``ort_default_argmax`` — ONNX Runtime used directly: default ``SessionOptions`` (only the
  thread count set, so each row compares like with like) and plain argmax decoding of the
  heat maps, i.e. the common "export to ONNX and take the peak" deployment.

torch is imported only when a torch peer is actually built; ``edgemark bench`` without
peers runs on the runtime stack alone.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdk.atomic import sha256_file  # also imported from here by benchmarks.bench
from sdk.backends.onnxruntime import OnnxRuntimeBackend
from sdk.decoders import HEATMAP_DECODERS, IN_GRAPH, MAPS_BACK
from sdk.metadata import DecoderSpec, ModelMetadata
from sdk.predictor import Predictor, PredictorOptions

PEER_KINDS = ("torch_eager", "ort_default_argmax")
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".ckpt", ".tar")


@dataclass(frozen=True)
class PeerCheckpoint:
    """A torch checkpoint and the architecture it loads into."""

    path: Path
    arch: str
    sha256: str


def find_checkpoints(root: Path) -> dict[str, Path]:
    """sha256 → checkpoint file for every checkpoint under ``root`` (empty when absent)."""
    if not root.is_dir():
        return {}
    found = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix.lower() in CHECKPOINT_SUFFIXES:
            found[sha256_file(path)] = path
    return found


def argmax_metadata(meta: ModelMetadata) -> ModelMetadata:
    """The same model read by plain argmax (heat-map decoders only; others keep their decoder)."""
    if meta.decoder.name not in HEATMAP_DECODERS or meta.decoder.params.get(IN_GRAPH):
        return meta  # nothing to swap: no maps, or the graph already decodes
    return meta.replace(decoder=DecoderSpec("argmax", {"stride": meta.decoder.params["stride"]})).validate()


class DefaultOrtBackend(OnnxRuntimeBackend):
    """ONNX Runtime with default SessionOptions: no optimisation level or inter-op setting chosen.

    The SDK adapter loads the file first (so every attribute it derives stays right), then the
    session is replaced by one built with default options.
    """

    name = "onnxruntime-default"
    thread_safe = True  # an ORT session, like the SDK's: no lock around run()

    def _load(self) -> None:
        super()._load()
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if self.threads:
            opts.intra_op_num_threads = self.threads
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])


def ort_default_predictor(onnx_path: str | Path, threads: int | None, max_batch: int = 32) -> Predictor:
    """Predictor over a default-options ORT session that decodes by plain argmax."""
    plain = DefaultOrtBackend(onnx_path, threads=threads)
    plain.metadata = argmax_metadata(plain.metadata)
    return Predictor(plain, options=PredictorOptions(threads=threads, max_batch=max_batch))


def torch_predictor(checkpoint: str | Path, arch: str, *, input_size: int | None, num_points: int | None,
                    decoder: dict[str, Any] | None, threads: int | None, max_batch: int = 32,
                    flip_test: bool = False) -> Predictor:
    """The checkpoint in PyTorch eager mode behind the same Predictor path.

    ``flip_test`` adds the authors' evaluation-time flip averaging (H3R's official test does it).

    ``decoder`` (a DecoderSpec as a dict, from the converted model) replaces the
    architecture's default when given, so decoders that need tables from the
    conversion (PIPNet neighbours) decode exactly as the converted file does.
    """
    from converters.api import load_source  # torch, lazily
    from converters.torch_backend import TorchBackend

    source = load_source(checkpoint, arch=arch, input_size=input_size, points=num_points)
    meta = source.meta
    if decoder is not None and decoder.get("name") == meta.decoder.name:
        # torch returns the maps: the decoder runs in numpy, and so does the map back
        params = {k: v for k, v in (decoder.get("params") or {}).items() if k not in (IN_GRAPH, MAPS_BACK)}
        meta = meta.replace(decoder=DecoderSpec(decoder["name"], params)).validate()
    backend = TorchBackend(source.torch_module, meta, threads=threads, source=checkpoint)
    return Predictor(backend, options=PredictorOptions(threads=threads, max_batch=max_batch, flip_test=flip_test))
