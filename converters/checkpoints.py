"""Loading torch checkpoints into registered architectures, strictly and with readable errors.

A checkpoint that loads "mostly" gives a model that runs and predicts garbage, so loading
is strict; when it fails, the error names the architecture and shows which keys and
shapes disagree, which is usually enough to see that the wrong ``--arch`` was chosen.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from sdk.errors import EdgemarkError

from .architectures import ArchSpec, get_arch

WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "net")
_SHOWN = 10
StateDict = dict[str, Tensor]


class CheckpointError(EdgemarkError, RuntimeError):
    """A checkpoint cannot be read or holds no usable state dict."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint's keys or shapes do not match the architecture it is loaded into."""


def read_state_dict(path_or_state_dict: str | Path | Mapping[str, Any]) -> StateDict:
    """Plain state dict from a file or mapping: unwraps ``{"state_dict"|"model"|…: …}`` and ``module.``."""
    source = _describe(path_or_state_dict)
    if isinstance(path_or_state_dict, Mapping):
        data: Any = path_or_state_dict
    else:
        path = Path(path_or_state_dict)
        if not path.is_file():
            raise FileNotFoundError(f"no such checkpoint: {path}")
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises RuntimeError/EOFError/UnpicklingError/... for bad files
            raise CheckpointError(f"cannot read checkpoint {source}: {type(exc).__name__}: {exc}") from exc
    while isinstance(data, Mapping):
        wrapped = next((data[k] for k in WRAPPER_KEYS if isinstance(data.get(k), Mapping)), None)
        if wrapped is None:
            break
        data = wrapped
    if not isinstance(data, Mapping) or not data or not all(isinstance(v, Tensor) for v in data.values()):
        raise CheckpointError(f"{source} holds no state dict of tensors (top level: {type(data).__name__})")
    state = {str(k): v for k, v in data.items()}
    if all(k.startswith("module.") for k in state):  # saved from DataParallel/DistributedDataParallel
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def load_checkpoint(model: nn.Module, path_or_state_dict: str | Path | Mapping[str, Any], arch_name: str) -> nn.Module:
    """Load strictly into ``model`` (built for ``arch_name``); raise CheckpointMismatchError on any difference."""
    return _load_strict(model, read_state_dict(path_or_state_dict), arch_name, _describe(path_or_state_dict))


def _load_strict(model: nn.Module, state: StateDict, arch_name: str, source: str) -> nn.Module:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
                  for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or mismatched:
        raise CheckpointMismatchError(
            f"checkpoint {source} does not fit architecture {arch_name!r} "
            f"({len(missing)} missing, {len(unexpected)} unexpected, {len(mismatched)} shape mismatches)"
            + _listing("missing keys", missing) + _listing("unexpected keys", unexpected)
            + _listing("shape mismatches", mismatched))
    model.load_state_dict(state, strict=True)
    return model


def build_from_checkpoint(arch_name: str, path: str | Path | Mapping[str, Any], num_points: int | None = None,
                          input_size: int | None = None, **options: Any) -> tuple[nn.Module, ArchSpec]:
    """Build ``arch_name`` sized from the checkpoint's head shapes, load it strictly, return it in eval mode.

    Explicit arguments win over what the checkpoint's shapes suggest; ``model.arch_config``
    holds the values finally used (pass them on to ``spec.make_metadata``).
    """
    spec = get_arch(arch_name)
    state = read_state_dict(path)
    inferred = dict(spec.infer_options(state))
    inferred_points = inferred.pop("num_points", None)
    model = spec.build(inferred_points if num_points is None else num_points, input_size, **{**inferred, **options})
    _load_strict(model, state, arch_name, _describe(path))
    return model.eval(), spec


def _describe(source: str | Path | Mapping[str, Any]) -> str:
    return "<in-memory state dict>" if isinstance(source, Mapping) else f"'{source}'"


def _listing(title: str, items: list[str]) -> str:
    if not items:
        return ""
    shown = ", ".join(items[:_SHOWN])
    more = f", … (+{len(items) - _SHOWN} more)" if len(items) > _SHOWN else ""
    return f"\n  {title} ({len(items)}): {shown}{more}"
