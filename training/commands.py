"""The training command: ``edgemark train CONFIG.yaml``."""
from __future__ import annotations

import argparse
import sys
from typing import Any

from sdk.commandline import Command, positive_int


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="training config (YAML)")
    p.add_argument("--out", help="output directory (default: the config's out_dir, runs/<name>)")
    p.add_argument("--resume", action="store_true", help="continue from <out>/last.pt if it exists")
    p.add_argument("--epochs", type=positive_int, help="override train.epochs")
    p.add_argument("--max-steps", type=positive_int, help="override train.max_steps")
    p.add_argument("--device", help="override train.device (auto, cpu, cuda)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run_train(args: argparse.Namespace) -> int:
    from .trainer import TrainConfigError, train

    train_over = {k: v for k, v in (("epochs", args.epochs), ("max_steps", args.max_steps), ("device", args.device))
                  if v is not None}
    overrides: dict[str, Any] = {"train": train_over} if train_over else {}
    if args.out:
        overrides["out_dir"] = args.out
    try:
        trainer = train(args.config, overrides=overrides, resume=args.resume, progress=not args.quiet)
    except TrainConfigError as exc:
        print(f"edgemark train: {exc}", file=sys.stderr)
        return 2
    best = trainer.best_nme
    print(f"trained {trainer.cfg['arch']} in {trainer.out}: best validation NME {best:.3f} % "
          f"({len(trainer.val_set)} held-out faces); convert with: edgemark convert {trainer.out / 'best.pth'} "
          f"--arch {trainer.cfg['arch']} --input-size {trainer.cfg['input_size']}"
          + (f" --meanface {trainer.out / 'meanface.txt'}" if trainer.meanface is not None else ""))
    return 0


COMMANDS = {"train": Command(add_train_arguments, run_train)}
