"""The converters' command: ``edgemark convert`` (checkpoints and ONNX files into every format)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from sdk.commandline import Command, defaults_of, positive_int
from sdk.formats import FORMATS
from sdk.metadata import COLOR_ORDERS, COORDINATE_ORIGINS, OFFICIAL_CROPS, SIDE_MODES, MetadataError

from .int8.search import INT8_RECIPES, Int8Options
from .source import ConversionError
from .to_tflite import TFLITE_CONVERTERS

INT8_DEFAULTS = defaults_of(Int8Options)


def add_convert_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", nargs="?", help="checkpoint (.pth) or model (.onnx)")
    p.add_argument("--arch", help="architecture of a torch checkpoint (see --list-archs)")
    p.add_argument("--points", type=positive_int, help="number of landmarks (default: read from the checkpoint)")
    p.add_argument("--input-size", type=positive_int, help="square input side in pixels")
    p.add_argument("--meanface", help="PIPNet mean-face file (neighbour tables go into the metadata)")
    p.add_argument("--metadata", help="JSON metadata for an ONNX file that has none (full schema)")
    g = p.add_argument_group("metadata of an ONNX-only model (instead of, or overriding, --metadata)")
    g.add_argument("--decoder", help="decoder name (regression, h3r_topk, shr_local_softargmax, argmax, pipnet, ...)")
    g.add_argument("--decoder-param", action="append", metavar="KEY=VALUE", help="decoder parameter (repeatable)")
    g.add_argument("--scheme", help="landmark scheme (wflw98, ibug68, aflw21; default: from --points)")
    g.add_argument("--output", action="append", metavar="NAME=ROLE",
                   help="ONNX output tensor and its role (heatmap, landmarks, cls, ...); repeatable")
    g.add_argument("--mean", nargs="+", type=float, help="per-channel mean after scaling (1 or 3 values)")
    g.add_argument("--std", nargs="+", type=float, help="per-channel std after scaling (1 or 3 values)")
    g.add_argument("--scale", type=float, help="pixel scale before mean/std (default 1/255)")
    g.add_argument("--color", choices=COLOR_ORDERS, help="channel order the network expects")
    g.add_argument("--crop-expand", type=float, help="crop side = expand x box side")
    g.add_argument("--crop-side-mode", choices=SIDE_MODES, help="box side measure")
    g.add_argument("--crop-origin", choices=COORDINATE_ORIGINS,
                   help="where the model's decoded coordinates count from")
    g.add_argument("--crop-preset", choices=sorted(OFFICIAL_CROPS),
                   help="an official pipeline's whole crop rule (rounding, filter, offsets; docs/geometry.md); "
                        "the other --crop-* flags then amend it")
    p.add_argument("--tflite-converter", default=TFLITE_CONVERTERS[0], choices=TFLITE_CONVERTERS,
                   help="TFLite path (auto: litert-torch for checkpoints, onnx2tf for ONNX files)")
    p.add_argument("--tflite-float", metavar="FILE.tflite",
                   help="TFLite INT8: quantize this FP32 .tflite of the same model (e.g. one litert-torch wrote) "
                        "instead of converting the ONNX again; it is checked against the ONNX first")
    p.add_argument("--name", help="base name of the output files (default: <arch>_<size> or the ONNX stem)")
    p.add_argument("--to", nargs="+", default=["onnx"], choices=sorted(FORMATS), help="formats")
    p.add_argument("--fp16", action="store_true", help="also write FP16 variants where the format has them")
    _add_int8_arguments(p)
    p.add_argument("--out", default="models", help="output directory")
    p.add_argument("--no-verify", action="store_true", help="skip the landmark comparison on real face crops")
    p.add_argument("--list-archs", action="store_true", help="list known architectures and exit")
    p.add_argument("--calibrate-confidence", action="store_true",
                   help="measure SOURCE's face confidence on AFLW training faces vs face-free boxes, store the "
                        "face / no-face threshold (or 'not informative') in its metadata in place, and exit")
    p.add_argument("--upgrade", action="store_true",
                   help="rewrite SOURCE's metadata (any format) in the current schema in place and exit; "
                        "older files are read without it, this makes the file itself current")
    p.add_argument("--decode-in-graph", action="store_true",
                   help="append the H3R top-k decoder to the ONNX / OpenVINO / TFLite files' graphs (the runtime "
                        "decodes in native code; checked against the numpy decoder to 1e-4 px; OpenVINO INT8 files "
                        "keep their maps, where it is slower). With a .onnx/.xml/.tflite SOURCE and no --to: "
                        "rewrite that file in place")
    p.add_argument("--normalise-in-graph", action="store_true",
                   help="move the pixel normalisation into the ONNX / OpenVINO / TFLite files' graphs (they then "
                        "take the uint8 BGR crops as they are, NHWC; checked against the original, and kept in numpy "
                        "where the check refuses). With a .onnx/.xml/.tflite SOURCE and no --to: rewrite that file "
                        "in place")
    p.add_argument("--map-back-in-graph", action="store_true",
                   help="after the decoder, append the map back to image pixels and the confidence to the ONNX / "
                        "OpenVINO files' graphs (they then take a second input, edgemark_to_image; checked against "
                        "numpy to 2 float32 steps). Needs a graph that decodes (with --decode-in-graph, or a file "
                        "written with it). With a .onnx/.xml SOURCE and no --to: rewrite that file in place")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def _rewrite_graph(path: Path, decode: bool, normalise: bool, fmt: str | None = None,
                   map_back: bool = False) -> list[str]:
    """Move the decoder, the normalisation and/or the map back into a written file; what was done, in words.

    ``fmt`` given: the rewrites not built or not worth it for that kind of file (its format, precision and
    decoder) are skipped with the reason, not failed."""
    from sdk.backends import open_backend

    from .graph_decode import skip_reason

    done = []
    kept = skip_reason(open_backend(path, threads=1).metadata, fmt) if decode and fmt is not None else None
    if kept:
        done.append(f"decoder kept out of the graph: {kept}")
    elif decode:
        from .graph_decode import decode_in_graph

        _, check = decode_in_graph(path)
        done.append(f"decoder now in the graph (max difference to numpy decoding {check['max_point_diff_px']:.2g} px "
                    f"on {check['faces']} face crops)")
    if normalise:
        from .graph_input import normalise_in_graph
        from .source import ConversionError

        try:
            _, worst = normalise_in_graph(path)
            done.append(f"normalisation now in the graph (outputs within {worst:.2g} of their range)")
        except ConversionError as exc:  # the check refused it (or there is nothing to move): said, not failed
            done.append(f"normalisation kept in numpy: {exc}")
    if map_back:
        from sdk.decoders import IN_GRAPH

        from .graph_map_back import NOT_MAPPED, map_back_in_graph

        if fmt in NOT_MAPPED:
            done.append(f"map back kept in numpy: {NOT_MAPPED[fmt]}")
        elif fmt is not None and not open_backend(path, threads=1).metadata.decoder.params.get(IN_GRAPH):
            done.append("map back kept in numpy: the file's decoder is not in its graph")
        else:
            _, check = map_back_in_graph(path)
            done.append(f"map back and confidence now in the graph (within {check['max_ulps']:.0f} float32 steps of "
                        f"numpy's, at most {check['max_point_diff_px']:.2g} px, on {check['faces']} face crops with "
                        "random maps into images up to 3,000 px)")
    return done


def _embedded_metadata(path: str) -> bool:
    """Whether ``path`` is a model file that already carries edgemark metadata (rewrite it in place)."""
    try:
        from sdk.backends import open_backend

        open_backend(path, threads=1)
        return True
    except Exception:
        return False


def run_convert(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .api import convert, load_source, metadata_from_json
    from .architectures import list_archs

    if args.list_archs:
        print("\n".join(list_archs()))
        return 0
    if not args.source:
        raise ConversionError("give a checkpoint or ONNX file (or --list-archs)")
    if args.calibrate_confidence:
        from .api import calibrate_face_confidence

        spec = calibrate_face_confidence(args.source, progress=not args.json).face_confidence
        m = spec.measured
        verdict = f"threshold {spec.threshold}" if spec.informative else "not informative (the detector decides)"
        print(f"{args.source}: face confidence {verdict}; false reject {m['false_reject_pct']} % of "
              f"{m['faces']} faces, false accept {m['false_accept_pct']} % of {m['face_free_boxes']} face-free boxes")
        return 0
    in_place = (not args.int8 and args.to == ["onnx"]
                and Path(args.source).suffix.lower() in (".onnx", ".xml", ".tflite") and _embedded_metadata(args.source))
    rewrites = args.decode_in_graph or args.normalise_in_graph or args.map_back_in_graph
    if rewrites and in_place:
        from sdk.formats import format_of

        for line in _rewrite_graph(Path(args.source), args.decode_in_graph, args.normalise_in_graph,
                                   format_of(args.source).name, map_back=args.map_back_in_graph):
            print(f"{args.source}: {line}")
        return 0
    if args.upgrade:
        from .api import upgrade_metadata

        meta = upgrade_metadata(args.source)
        print(f"{args.source}: metadata rewritten in schema {meta.schema_version} (weights untouched)")
        return 0
    from .metadata_options import has_metadata_options, metadata_from_options, parse_key_values

    meta = metadata_from_json(args.metadata) if args.metadata else None
    if has_metadata_options(args):
        if Path(args.source).suffix.lower() != ".onnx":
            raise ConversionError("--decoder/--mean/--crop-... describe ONNX files; a checkpoint's "
                                  "metadata comes from --arch")
        meta = metadata_from_options(
            args.source, meta, decoder=args.decoder, decoder_params=parse_key_values(args.decoder_param),
            points=args.points, scheme=args.scheme, input_size=args.input_size, mean=args.mean, std=args.std,
            scale=args.scale, color=args.color, crop_expand=args.crop_expand, crop_side_mode=args.crop_side_mode,
            crop_origin=args.crop_origin, crop_preset=args.crop_preset, outputs=parse_key_values(args.output, "--output") or None)
    if meta is None and Path(args.source).suffix.lower() == ".onnx":
        from .onnx_io import read_metadata

        try:
            read_metadata(args.source)
        except MetadataError as exc:
            raise MetadataError(f"{args.source}: {exc}; describe the model with --metadata FILE.json or with "
                                "--decoder and the preprocessing options (see `edgemark convert --help`)") from None
        except Exception:  # unreadable file: load_source reports it
            pass
    source = load_source(args.source, arch=args.arch, points=args.points, input_size=args.input_size,
                         meanface=args.meanface, metadata=meta, name=args.name)
    source.options["tflite_converter"] = args.tflite_converter
    if args.tflite_float:
        if not Path(args.tflite_float).is_file():
            raise ConversionError(f"--tflite-float {args.tflite_float}: no such file")
        source.options["tflite_float"] = args.tflite_float
    precisions = ["fp32", "fp16"] if args.fp16 else ["fp32"]
    if args.int8:
        source.options["int8"] = _int8_options(args)
        precisions.append("int8")
    jobs = [(f, p) for f in args.to for p in precisions if p in FORMATS[f].precisions]
    rows = []
    bar = tqdm(total=len(jobs), desc="convert", unit="file", disable=args.json or not sys.stderr.isatty())
    failures = []
    fp32_files: dict[str, Path] = {}  # per format, for the INT8 speed-up
    with source:  # removes the intermediate files whatever happens
        for fmt, precision in jobs:
            bar.set_postfix_str(f"{fmt} {precision}")
            try:
                (result,) = convert(source, [fmt], args.out, precisions=[precision], verify=not args.no_verify)
            except ConversionError as exc:  # this file is not written; the other formats still are
                failures.append(f"{fmt} {precision}: {exc}")
                bar.update()
                continue
            if rewrites:
                try:
                    for line in _rewrite_graph(result.path, args.decode_in_graph, args.normalise_in_graph, fmt,
                                               map_back=args.map_back_in_graph):
                        if not args.json:
                            print(f"{result.path}: {line}", file=sys.stderr)
                except ConversionError as exc:
                    failures.append(f"{fmt} {precision} graph rewrite: {exc}")
            if precision == "fp32":
                fp32_files[fmt] = result.path
            row = {**result.as_row(), **(_int8_summary(result.path) if precision == "int8" else {})}
            if precision == "int8":
                row["int8_speedup"] = _int8_speedup(fp32_files.get(fmt), result.path)
            rows.append(row)
            bar.update()
    bar.close()
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        _print_table(rows)
    sys.stdout.flush()  # TensorFlow/LiteRT teardown can kill the process at exit; keep the report
    if failures:  # what was written is reported above; the failed files were not written
        for failure in failures:
            print(f"edgemark convert: {failure}", file=sys.stderr)
        return 2
    return 0


def _add_int8_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("INT8 (calibrated on real faces, checked against FP32 on held-out faces)")
    g.add_argument("--int8", action="store_true", help="also write INT8 variants (ONNX Runtime QDQ, OpenVINO via "
                   "NNCF, TFLite full-integer)")
    g.add_argument("--calib", default=INT8_DEFAULTS["calib"], metavar="aflw-faces|PATH|NAME=PATH",
                   help="calibration faces: 'aflw-faces' (default), a folder with boxes.json/boxes.csv, a boxes "
                        "file, or NAME=PATH for a benchmarks dataset (e.g. 300w=/data/300W); never the test set")
    g.add_argument("--calib-size", type=positive_int, default=INT8_DEFAULTS["calib_size"],
                   help="calibration faces (default %(default)s)")
    g.add_argument("--calib-val-size", type=positive_int, default=INT8_DEFAULTS["val_size"],
                   help="held-out validation faces (default %(default)s)")
    g.add_argument("--calib-seed", type=int, default=INT8_DEFAULTS["seed"], help="seed of the calibration/validation draw")
    g.add_argument("--max-nme-increase", metavar="PCT",
                   help="accuracy budget: relative NME increase against ground truth, e.g. '0.5%%' = INT8 NME <= "
                        "FP32 NME x 1.005, predicted from the INT8-vs-FP32 displacement on the held-out faces and "
                        "their labels' FP32 NME; more layers stay float until it fits")
    g.add_argument("--reference-nme", type=float, metavar="NME",
                   help="the FP32 NME (%%) the budget is relative to, for calibration faces without usable labels")
    g.add_argument("--int8-io", action="store_true", help="TFLite: int8 input/output tensors (integer-only targets)")
    g.add_argument("--int8-recipe", default=INT8_DEFAULTS["recipe"], choices=INT8_RECIPES,
                   help="auto: budget-driven recipe search (default); naive: min-max, everything INT8 incl. outputs "
                        "(a baseline for comparison)")


def _parse_budget(text: str | None) -> float | None:
    if text is None:
        return None
    value = text.strip().rstrip("%").strip()
    try:
        budget = float(value)
    except ValueError:
        raise ConversionError(f"--max-nme-increase takes a relative increase in % such as '0.5%' or 1, got {text!r}")
    if not budget >= 0:
        raise ConversionError(f"--max-nme-increase must be >= 0, got {text!r}")
    return budget


def _int8_options(args: argparse.Namespace) -> Any:
    return Int8Options(calib=args.calib, calib_size=args.calib_size, val_size=args.calib_val_size,
                       seed=args.calib_seed, max_nme_increase=_parse_budget(args.max_nme_increase),
                       reference_nme=args.reference_nme,
                       io="int8" if args.int8_io else "float", recipe=args.int8_recipe, progress=not args.json)


def _int8_summary(path: Path) -> dict[str, Any]:
    """Recipe and measured validation numbers of an INT8 file, read back from its metadata."""
    from sdk.backends import open_backend

    extra = open_backend(path).metadata.provenance.extra
    recipe, val = extra.get("int8_recipe", {}), extra.get("validation", {})
    return {"int8_recipe": recipe.get("name", ""), "val_nme_vs_fp32": val.get("nme_vs_fp32"),
            "predicted_nme_increase_pct": val.get("predicted_increase_pct")}


def _int8_speedup(fp32_path: Path | None, int8_path: Path) -> str:
    """Measure, store in the INT8 file's metadata and describe its speed-up over the FP32 file of its format."""
    if fp32_path is None:
        return "not measured (no FP32 file of this format in this run)"
    from sdk.backends import open_backend

    from .api import restamp
    from .speedup import measure_speedup, speedup_text

    measured = measure_speedup(fp32_path, int8_path)
    import dataclasses

    meta = open_backend(int8_path).metadata
    prov = meta.provenance
    restamp(int8_path, meta.replace(provenance=dataclasses.replace(prov, extra={**prov.extra, "int8_speedup": measured})))
    return speedup_text(measured)


def _print_table(rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    cols = list(dict.fromkeys(c for r in rows for c in r))  # rows may add columns (INT8 rows do)
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in cols}
    print("  ".join(c.ljust(widths[c]) for c in cols))
    for r in rows:
        print("  ".join(str(r.get(c, "")).ljust(widths[c]) for c in cols))



COMMANDS = {"convert": Command(add_convert_arguments, run_convert)}
