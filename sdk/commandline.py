"""What every package's command needs to plug into the ``edgemark`` command line.

A package that owns commands has a ``commands`` module with ``COMMANDS: dict[str, Command]``;
the command-line layer (``edgemark_cli``) lists them, imports a package's module only when one
of its commands runs, and turns errors into one line. Defaults and choices come from the
library (``defaults_of``), never retyped in argparse.
"""
from __future__ import annotations

import argparse
import dataclasses
import inspect
from typing import Any, Callable, NamedTuple


class Command(NamedTuple):
    """``add_arguments(parser)`` defines the options; ``run(args) -> exit code`` does the work."""

    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def defaults_of(obj: Any) -> dict[str, Any]:
    """The default of every field of a dataclass, or of every keyword parameter of a function."""
    if dataclasses.is_dataclass(obj):
        out = {}
        for f in dataclasses.fields(obj):
            if f.default is not dataclasses.MISSING:
                out[f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                out[f.name] = f.default_factory()
        return out
    return {name: p.default for name, p in inspect.signature(obj).parameters.items()
            if p.default is not inspect.Parameter.empty}


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (threads, sizes, counts), refused in one line otherwise."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def unit_float(text: str) -> float:
    """argparse type: a number in [0, 1] (confidences, fractions)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {value}")
    return value


__all__ = ["Command", "defaults_of", "positive_int", "unit_float"]
