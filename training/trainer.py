"""Train a registered architecture from a YAML config: seeded, resumable, logged, validated each epoch.

Runs on CPU, or on CUDA when available (``train.device: auto``). Everything random is
derived from ``(seed, epoch, step/index)``, so a resumed run continues exactly where
the interrupted one stopped. Outputs in ``out_dir``:

* ``last.pt`` — full training state (model, optimiser, scheduler, position), for ``--resume``;
* ``model.pth`` / ``best.pth`` — plain state dicts (last epoch / best validation NME) that
  ``edgemark convert CKPT --arch ARCH`` reads;
* ``meanface.txt`` (PIPNet: pass it to ``--meanface``), ``metadata.json``, ``config.yaml``;
* ``log.csv`` (every ``log_every`` steps) and ``history.json`` (per epoch: loss, val NME, time).
"""
from __future__ import annotations

import copy
import csv
import json
import math
import time
from dataclasses import fields
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import nn

from converters.architectures import get_arch
from sdk.decoders import decode
from sdk.atomic import write_text
from sdk.metadata import ModelMetadata
from sdk.preprocess import crop_regions, to_image_coords, warp_matrices

from .augment import AugmentConfig
from .data import AugmentedFaces, FaceSet, make_sets
from .encoders import pipnet_meanface
from .objectives import make_objective, outputs_dict

DEFAULTS: dict[str, Any] = {
    "name": "model",
    "arch": "h3r_mobilenetv2",
    "input_size": 128,
    "num_points": 98,
    "arch_options": {},
    "init": {"checkpoint": None, "prefixes": ["backbone.features."]},
    "data": {"source": "aflw_pseudo"},
    "augment": {},
    "loss": {},
    "train": {"epochs": 1, "batch_size": 32, "optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0,
              "schedule": "cosine", "warmup_steps": 100, "min_lr_ratio": 0.01, "milestones": [0.6, 0.85],
              "seed": 0, "device": "auto", "threads": None, "num_workers": 0, "checkpoint_every": 200,
              "log_every": 20, "max_steps": None, "val_batch": 64, "freeze": []},
    "out_dir": None,
}


class TrainConfigError(ValueError):
    """The training config is missing something or names something unknown."""


def load_config(path: str | Path, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """YAML config merged over ``DEFAULTS`` (one level deep for the sections)."""
    import yaml

    raw = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(raw, dict):
        raise TrainConfigError(f"{path}: a training config must be a mapping")
    return merge_config(raw, overrides)


def merge_config(raw: Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    cfg = copy.deepcopy(DEFAULTS)
    for source in (raw, overrides or {}):
        for key, value in source.items():
            if key not in cfg:
                raise TrainConfigError(f"unknown config key {key!r}; known: {sorted(cfg)}")
            if isinstance(cfg[key], dict) and isinstance(value, Mapping):
                cfg[key] = {**cfg[key], **value}
            else:
                cfg[key] = value
    unknown = set(cfg["train"]) - set(DEFAULTS["train"])
    if unknown:
        raise TrainConfigError(f"unknown train options {sorted(unknown)}")
    known_aug = {f.name for f in fields(AugmentConfig)} | {"enabled"}
    if set(cfg["augment"]) - known_aug:
        raise TrainConfigError(f"unknown augment options {sorted(set(cfg['augment']) - known_aug)}; known: {sorted(known_aug)}")
    if cfg["out_dir"] is None:
        cfg["out_dir"] = str(Path("runs") / cfg["name"])
    return cfg


def augment_config(section: Mapping[str, Any]) -> AugmentConfig:
    if section.get("enabled", True) is False:
        return AugmentConfig.off()
    values = {k: (tuple(v) if isinstance(v, list) else v) for k, v in section.items() if k != "enabled"}
    return AugmentConfig(**values)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def init_from_checkpoint(model: nn.Module, checkpoint: str | Path, prefixes: list[str]) -> int:
    """Copy the tensors whose names start with one of ``prefixes`` (shapes must match); return the count."""
    from converters.checkpoints import read_state_dict

    from .teacher import resolve_shared

    state = read_state_dict(resolve_shared(checkpoint))
    own = model.state_dict()
    picked = {k: v for k, v in state.items() if any(k.startswith(p) for p in prefixes)}
    if not picked:
        raise TrainConfigError(f"{checkpoint}: no tensors start with {prefixes}")
    missing = [k for k in picked if k not in own]
    bad = [k for k in picked if k in own and own[k].shape != picked[k].shape]
    if missing or bad:
        raise TrainConfigError(f"{checkpoint}: {len(missing)} keys not in the model (e.g. {missing[:3]}), "
                               f"{len(bad)} shape mismatches (e.g. {bad[:3]})")
    model.load_state_dict(picked, strict=False)
    return len(picked)


def lr_lambda(cfg: Mapping[str, Any], total_steps: int) -> Callable[[int], float]:
    warm = int(cfg["warmup_steps"])
    floor = float(cfg["min_lr_ratio"])
    schedule = cfg["schedule"]
    if schedule not in ("cosine", "step", "constant"):
        raise TrainConfigError(f"schedule must be cosine, step or constant, got {schedule!r}")
    milestones = [int(m * total_steps) for m in cfg["milestones"]]

    def f(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if schedule == "cosine":
            t = min(1.0, (step - warm) / max(1, total_steps - warm))
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))
        if schedule == "step":
            return 0.1 ** sum(step >= m for m in milestones)
        return 1.0
    return f


def _batches(n: int, batch: int, seed: int, epoch: int) -> list[np.ndarray]:
    order = np.random.default_rng([seed, epoch, 1]).permutation(n)
    return [order[i:i + batch] for i in range(0, n - batch + 1, batch)]


class Trainer:
    """Builds model, data and optimiser from a merged config; ``fit()`` trains, ``validate()`` scores."""

    def __init__(self, cfg: Mapping[str, Any], *, train_set: FaceSet | None = None, val_set: FaceSet | None = None,
                 progress: bool = True) -> None:
        self.cfg = copy.deepcopy(dict(cfg))
        self.progress = progress
        tcfg = self.cfg["train"]
        self.out = Path(self.cfg["out_dir"])
        self.device = pick_device(tcfg["device"])
        if tcfg["threads"]:
            torch.set_num_threads(int(tcfg["threads"]))
        self.seed = int(tcfg["seed"])
        self.spec = get_arch(self.cfg["arch"])
        n, s = int(self.cfg["num_points"]), int(self.cfg["input_size"])
        if train_set is None or val_set is None:
            train_set, val_set = make_sets(self.cfg["data"], n, progress=progress)
        self.train_set, self.val_set = train_set, val_set
        self.meanface = None
        opts = dict(self.cfg["arch_options"])
        if "num_neighbours" in self.spec.options:  # PIPNet: decoder tables from the training mean face
            self.meanface = pipnet_meanface(train_set.normalised_points(self.spec.trainer_crop, s, s))
        self.meta: ModelMetadata = self.spec.make_metadata(n, s, meanface=self.meanface, crop=self.spec.trainer_crop,
                                                           **opts)
        torch.manual_seed(self.seed)
        self.model = self.spec.build(n, s, **opts)
        self.init_count = 0
        init = self.cfg["init"] or {}
        if init.get("checkpoint"):
            self.init_count = init_from_checkpoint(self.model, init["checkpoint"], list(init.get("prefixes") or [""]))
        self.frozen = [str(p) for p in (tcfg["freeze"] or [])]
        frozen_count = 0
        for name, param in self.model.named_parameters():
            if any(name.startswith(p) for p in self.frozen):
                param.requires_grad_(False)
                frozen_count += 1
        if self.frozen and not frozen_count:
            raise TrainConfigError(f"train.freeze {self.frozen} matches no parameter")
        self.model.to(self.device)
        self.objective = make_objective(self.meta, self.cfg["loss"], self.meanface)
        self.train_data = AugmentedFaces(train_set, self.meta, augment_config(self.cfg["augment"]), self.seed)
        self.val_data = AugmentedFaces(val_set, self.meta, AugmentConfig.off(), self.seed)
        self.batch = int(tcfg["batch_size"])
        if len(train_set) < self.batch:
            raise TrainConfigError(f"batch_size {self.batch} is larger than the {len(train_set)} training faces")
        self.steps_per_epoch = len(train_set) // self.batch
        self.epochs = int(tcfg["epochs"])
        self.total_steps = self.epochs * self.steps_per_epoch
        if tcfg["max_steps"]:
            self.total_steps = min(self.total_steps, int(tcfg["max_steps"]))
        params = [p for p in self.model.parameters() if p.requires_grad]
        if tcfg["optimizer"] == "adam":
            self.optim = torch.optim.Adam(params, lr=float(tcfg["lr"]), weight_decay=float(tcfg["weight_decay"]))
        elif tcfg["optimizer"] == "adamw":
            self.optim = torch.optim.AdamW(params, lr=float(tcfg["lr"]), weight_decay=float(tcfg["weight_decay"]))
        else:
            raise TrainConfigError(f"optimizer must be adam or adamw, got {tcfg['optimizer']!r}")
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.optim, lr_lambda(tcfg, self.total_steps))
        self.epoch, self.step_in_epoch, self.global_step = 0, 0, 0
        self.best_nme = float("inf")
        self.history: list[dict[str, Any]] = []

    # ----------------------------------------------------------------------------- state
    def _state(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optim.state_dict(),
                "scheduler": self.sched.state_dict(), "epoch": self.epoch, "step_in_epoch": self.step_in_epoch,
                "global_step": self.global_step, "best_nme": self.best_nme, "history": self.history,
                "config": json.dumps(self.cfg)}

    def save(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        tmp = self.out / "last.pt.tmp"
        torch.save(self._state(), tmp)
        tmp.replace(self.out / "last.pt")

    def resume(self) -> bool:
        """Load ``last.pt`` if present; True if training state was restored."""
        path = self.out / "last.pt"
        if not path.is_file():
            return False
        state = torch.load(path, map_location=self.device, weights_only=True)
        self.model.load_state_dict(state["model"])
        self.optim.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        self.epoch, self.step_in_epoch = int(state["epoch"]), int(state["step_in_epoch"])
        self.global_step, self.best_nme = int(state["global_step"]), float(state["best_nme"])
        self.history = list(state["history"])
        return True

    def _write_static(self) -> None:
        import yaml

        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "config.yaml").write_text(yaml.safe_dump(self.cfg, sort_keys=False))
        (self.out / "metadata.json").write_text(self.meta.to_json())
        if self.meanface is not None:
            (self.out / "meanface.txt").write_text(" ".join(f"{v:.6f}" for v in self.meanface.reshape(-1)) + "\n")

    # ----------------------------------------------------------------------------- training
    def _train_mode(self) -> None:
        """Train mode, except frozen parts: their BatchNorm keeps its running statistics."""
        self.model.train()
        for name, module in self.model.named_modules():
            if name and any((name + ".").startswith(p) for p in self.frozen):
                module.eval()

    def train_step(self, images: torch.Tensor, points: np.ndarray) -> tuple[float, dict[str, float]]:
        self._train_mode()
        rng = np.random.default_rng([self.seed, self.epoch, self.step_in_epoch, 2])
        outputs = outputs_dict(self.model(images.to(self.device)), self.spec.output_roles)
        loss, terms = self.objective.loss(outputs, points, rng)
        self.optim.zero_grad(set_to_none=True)
        loss.backward()
        self.optim.step()
        self.sched.step()
        return float(loss.detach()), terms

    def fit(self, *, resume: bool = False, stop_after: int | None = None) -> list[dict[str, Any]]:
        """Train to the configured epochs / max_steps; returns the per-epoch history.

        ``stop_after``: leave after this many steps of this call, with ``last.pt`` saved, as if
        interrupted (the schedule still spans the whole run; ``resume=True`` continues it).
        """
        from torch.utils.data import DataLoader
        from tqdm import tqdm

        if resume and self.resume() and self.progress:
            print(f"resumed at epoch {self.epoch + 1}, step {self.step_in_epoch} ({self.out / 'last.pt'})")
        self._write_static()
        tcfg = self.cfg["train"]
        log_path = self.out / "log.csv"
        new_log = not log_path.exists() or self.global_step == 0
        log_file = open(log_path, "w" if new_log else "a", newline="")
        writer = csv.writer(log_file)
        if new_log:
            writer.writerow(["epoch", "step", "global_step", "loss", "lr", "seconds", "terms"])
        start = time.perf_counter()
        steps_this_call = 0
        try:
            while self.epoch < self.epochs and self.global_step < self.total_steps:
                self.train_data.set_epoch(self.epoch)
                batches = _batches(len(self.train_data), self.batch, self.seed, self.epoch)[self.step_in_epoch:]
                loader = DataLoader(self.train_data, batch_sampler=batches, num_workers=int(tcfg["num_workers"]))
                bar = tqdm(total=self.steps_per_epoch, initial=self.step_in_epoch, desc=f"epoch {self.epoch + 1}/{self.epochs}",
                           unit="step", disable=not self.progress)
                losses, epoch_start = [], time.perf_counter()
                for images, points in loader:
                    loss, terms = self.train_step(images, points.numpy())
                    losses.append(loss)
                    self.step_in_epoch += 1
                    self.global_step += 1
                    bar.update()
                    bar.set_postfix(loss=f"{loss:.4f}", lr=f"{self.sched.get_last_lr()[0]:.2e}")
                    if self.global_step % int(tcfg["log_every"]) == 0 or self.global_step == 1:
                        writer.writerow([self.epoch + 1, self.step_in_epoch, self.global_step, f"{loss:.6f}",
                                         f"{self.sched.get_last_lr()[0]:.3e}", f"{time.perf_counter() - start:.1f}",
                                         json.dumps({k: round(v, 6) for k, v in terms.items()})])
                        log_file.flush()
                    if self.global_step % int(tcfg["checkpoint_every"]) == 0:
                        self.save()
                    steps_this_call += 1
                    if stop_after is not None and steps_this_call >= stop_after:
                        bar.close()
                        self.save()
                        return self.history
                    if self.global_step >= self.total_steps:
                        break
                bar.close()
                finished_epoch = self.step_in_epoch >= self.steps_per_epoch
                val = self.validate()
                record = {"epoch": self.epoch + 1, "steps": self.step_in_epoch, "global_step": self.global_step,
                          "train_loss": float(np.mean(losses)) if losses else None, "val_nme": val,
                          "seconds": round(time.perf_counter() - epoch_start, 1)}
                self.history.append(record)
                if self.progress:
                    print(f"epoch {self.epoch + 1}: train loss {record['train_loss']}, val NME {val:.3f} %")
                if val < self.best_nme:
                    self.best_nme = val
                    torch.save(self.model.state_dict(), self.out / "best.pth")
                torch.save(self.model.state_dict(), self.out / "model.pth")
                # the crop rule it was trained with: `edgemark convert model.pth --arch A --metadata metadata.json`
                write_text(self.out / "metadata.json", self.meta.to_json())
                if finished_epoch:
                    self.epoch += 1
                    self.step_in_epoch = 0
                self.save()
                (self.out / "history.json").write_text(json.dumps(
                    {"name": self.cfg["name"], "arch": self.cfg["arch"], "init_tensors": self.init_count,
                     "train_faces": len(self.train_set), "val_faces": len(self.val_set),
                     "device": str(self.device), "best_val_nme": self.best_nme, "epochs": self.history}, indent=1))
        finally:
            log_file.close()
        return self.history

    # ----------------------------------------------------------------------------- validation
    @torch.no_grad()
    def predict_val(self, faces: FaceSet | None = None) -> np.ndarray:
        """Image-pixel landmarks (N, L, 2) for un-augmented crops, decoded with the model's own decoder."""
        data = self.val_data if faces is None else AugmentedFaces(faces, self.meta, AugmentConfig.off(), self.seed)
        self.model.eval()
        bs = int(self.cfg["train"]["val_batch"])
        preds = []
        for lo in range(0, len(data), bs):
            x = torch.stack([data[i][0] for i in range(lo, min(lo + bs, len(data)))]).to(self.device)
            outs = outputs_dict(self.model(x), self.spec.output_roles)
            pts, _ = decode(self.meta.decoder.name, {k: v.float().cpu().numpy() for k, v in outs.items()},
                            self.meta.decoder.params)
            preds.append(pts)
        faces = data.faces
        mats = warp_matrices(crop_regions(faces.boxes, self.meta.crop), self.meta.input.width, self.meta.input.height)
        return to_image_coords(np.concatenate(preds), mats, self.meta.crop.coordinate_origin)

    def validate(self) -> float:
        """Mean NME (%) on the held-out faces, normalised by sqrt(w·h) of the label's 68-point box
        (all labelled points for schemes without a 68 subset), like the AFLW2000-3D protocol."""
        from landmarkdata.metrics import box_normaliser, nme

        gt = self.val_set.landmarks
        pred = self.predict_val()
        to68 = self.meta.scheme.to68
        norm = box_normaliser(gt[:, list(to68)] if to68 is not None else gt)
        per_face = nme(pred, gt, norm)
        return float(np.nanmean(per_face))


def train(config: str | Path | Mapping[str, Any], *, overrides: Mapping[str, Any] | None = None, resume: bool = False,
          progress: bool = True) -> Trainer:
    """Load a config (path or mapping), train, return the Trainer (its ``out`` holds the results)."""
    cfg = load_config(config, overrides) if isinstance(config, (str, Path)) else merge_config(config, overrides)
    trainer = Trainer(cfg, progress=progress)
    trainer.fit(resume=resume)
    return trainer


__all__ = ["DEFAULTS", "TrainConfigError", "Trainer", "augment_config", "init_from_checkpoint", "load_config",
           "merge_config", "train"]
