"""The ``edgemark`` command line, composed from the commands each package registers.

Top of the layers: imported by nobody. ``COMMANDS`` below is the registry: each entry names the
package module that owns the command (its ``COMMANDS`` table, see ``sdk.commandline``), the
modules it needs and the extra that installs them. ``edgemark --help`` lists every command
without importing any of them; a command is imported only when it runs, and one whose
dependencies are missing says which extra to install (one line, exit 2) instead of failing
with a traceback. Every error edgemark raises on purpose is one line on stderr, exit 2;
anything unexpected too, with ``--debug`` for its traceback.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class CommandEntry:
    name: str
    help: str
    module: str  # module with a COMMANDS table holding this name
    requires: tuple[str, ...] = ()  # importable modules it needs beyond the runtime
    extra: str | None = None  # extra of edgemark-tools (this repository's second distribution) that brings them

    def missing(self) -> list[str]:
        return [m for m in self.requires if not _importable(m)]

    @property
    def install_hint(self) -> str:
        return (f"pip install 'edgemark-tools[{self.extra}]' (from an edgemark checkout: "
                f"pip install './tools[{self.extra}]')")


COMMANDS: dict[str, CommandEntry] = {c.name: c for c in (
    CommandEntry("predict", "landmarks for the faces of an image, a video file or a camera", "sdk.commands"),
    CommandEntry("convert", "convert a torch checkpoint or an ONNX file into ONNX / OpenVINO / TFLite",
                 "converters.commands", ("converters", "calibration", "landmarkdata", "onnx", "onnxruntime"),
                 "convert"),
    CommandEntry("eval", "NME of a model file on a landmark dataset", "benchmarks.commands",
                 ("benchmarks", "landmarkdata"), "bench"),
    CommandEntry("bench", "latency vs NME of model files on every runtime, with a report", "benchmarks.commands",
                 ("benchmarks", "landmarkdata", "matplotlib", "psutil"), "bench"),
    CommandEntry("train", "train a landmark model from a YAML config (training/configs/*.yaml)",
                 "training.commands", ("training", "converters", "landmarkdata", "torch", "yaml"), "train"),
)}


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("edgemark")
    except PackageNotFoundError:
        from sdk import __version__

        return __version__


def _top_parser() -> argparse.ArgumentParser:
    listing = "\n".join(f"  {c.name:<9} {c.help}" + (f"  [needs edgemark-tools[{c.extra}]]" if c.missing() else "")
                        for c in COMMANDS.values())
    parser = _OneLineParser(
        prog="edgemark", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Facial landmarks on the edge: convert, run, evaluate and benchmark landmark models.",
        epilog=f"commands:\n{listing}\n\n`edgemark COMMAND --help` for a command's options.")
    parser.add_argument("--version", action="version", version=f"edgemark {version()}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an unexpected error")
    parser.add_argument("command", nargs="?", choices=sorted(COMMANDS), metavar="COMMAND")
    return parser


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but a refused argument is one line (``edgemark CMD: message``), exit 2, no usage dump."""

    def error(self, message: str):  # type: ignore[override]
        print(f"{self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def _fail(command: str, message: str, code: int = 2) -> int:
    first = " ".join(str(message).split("\n")[0].split()) or "failed"
    print(f"edgemark {command}: {first}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"] if debug else argv
    if not argv or argv[0].startswith("-") or argv[0] not in COMMANDS:
        parser = _top_parser()
        args = parser.parse_args(argv)  # --help / --version exit here; an unknown command is argparse's error
        if args.command is None:
            parser.print_help()
            return 2
    entry = COMMANDS[argv[0]]
    missing = entry.missing()
    if missing:
        return _fail(entry.name, f"needs {', '.join(missing)}, which this install lacks: {entry.install_hint}")
    from sdk.errors import EdgemarkError

    try:
        command = importlib.import_module(entry.module).COMMANDS[entry.name]
        parser = _OneLineParser(prog=f"edgemark {entry.name}", description=entry.help)
        command.add_arguments(parser)
        args = parser.parse_args(argv[1:])
        return int(command.run(args) or 0)
    except (EdgemarkError, OSError, ValueError) as exc:
        if debug:
            raise
        if isinstance(exc, BrokenPipeError):  # `edgemark ... --json - | head`: the reader went away
            _silence_stdout()
            return 0
        return _fail(entry.name, str(exc) or type(exc).__name__)
    except ModuleNotFoundError as exc:
        if debug:
            raise
        hint = f": {entry.install_hint}" if entry.extra else ""
        return _fail(entry.name, f"needs the module {exc.name!r}, which is not installed{hint}")
    except KeyboardInterrupt:
        return _fail(entry.name, "interrupted", 130)
    except Exception as exc:  # anything unexpected: still one line, the traceback on request
        if debug:
            raise
        return _fail(entry.name, f"unexpected {type(exc).__name__}: {exc} (rerun with --debug for the traceback)")


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


__all__ = ["COMMANDS", "CommandEntry", "main", "version"]
