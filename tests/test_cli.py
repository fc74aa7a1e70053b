"""The command line composed from the packages' commands: listing, extras hints, one-line errors."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import edgemark_cli
from edgemark_cli import COMMANDS, CommandEntry, main

SAMPLE = Path(__file__).resolve().parent.parent / "sdk" / "data" / "sample.jpg"
TOOLING = ("converters", "calibration", "landmarkdata", "benchmarks", "training", "torch", "tensorflow")


def test_help_lists_every_command_without_importing_them(capsys):
    code = ("import sys\nfrom edgemark_cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            f"loaded = sorted({{m.split('.')[0] for m in sys.modules}} & set({TOOLING!r}))\n"
            "assert not loaded, loaded\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    for name in ("predict", "convert", "eval", "bench", "train"):
        assert f"  {name} " in run.stdout


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"edgemark {edgemark_cli.version()}"


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "commands:" in capsys.readouterr().out


def test_a_command_with_missing_dependencies_names_its_extra(monkeypatch, capsys):
    monkeypatch.setitem(COMMANDS, "convert", CommandEntry("convert", "x", "converters.commands",
                                                          ("no_such_module_for_edgemark",), "convert"))
    assert main(["convert", "--help"]) == 2
    err = capsys.readouterr().err
    assert err == ("edgemark convert: needs no_such_module_for_edgemark, which this install lacks: "
                   "pip install 'edgemark-tools[convert]' (from an edgemark checkout: pip install './tools[convert]')\n")


def test_unexpected_errors_are_one_line_and_debug_shows_the_traceback(monkeypatch, capsys):
    import sdk.commands

    def boom(args):
        raise ZeroDivisionError("synthetic")

    monkeypatch.setitem(sdk.commands.COMMANDS, "predict", sdk.commands.COMMANDS["predict"]._replace(run=boom))
    assert main(["predict", str(SAMPLE)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == ("edgemark predict: unexpected ZeroDivisionError: synthetic "
                           "(rerun with --debug for the traceback)")
    with pytest.raises(ZeroDivisionError):
        main(["--debug", "predict", str(SAMPLE)])


def test_predict_imports_no_tooling():
    pytest.importorskip("onnxruntime")
    code = ("import sys\nfrom edgemark_cli import main\n"
            f"assert main(['predict', {str(SAMPLE)!r}]) == 0\n"
            f"loaded = sorted({{m.split('.')[0] for m in sys.modules}} & set({TOOLING!r}))\n"
            "assert not loaded, loaded\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "1 face(s), 98 points each" in run.stdout


def test_json_to_a_closed_pipe_is_not_a_traceback():
    pytest.importorskip("onnxruntime")
    proc = subprocess.Popen([sys.executable, "-m", "edgemark_cli", "predict", str(SAMPLE), "--json", "-"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before edgemark writes (`... | head -c 0`)
    err = proc.stderr.read().decode()
    assert proc.wait() == 0 and "Traceback" not in err and "BrokenPipe" not in err


def test_every_registered_command_builds_its_parser():
    import argparse
    import importlib

    for entry in COMMANDS.values():
        if entry.missing():
            continue
        command = importlib.import_module(entry.module).COMMANDS[entry.name]
        parser = argparse.ArgumentParser(prog=f"edgemark {entry.name}")
        command.add_arguments(parser)
        assert parser.format_help()
