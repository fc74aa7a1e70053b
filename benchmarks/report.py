"""Benchmark outputs: ``results.json`` (machine-readable), ``report.md`` and two plots.

``results.json`` schema, version 1 (``schema_version``). Unknown keys may be added in later
minor revisions; renaming or removing a key bumps the version.

* ``schema_version`` int; ``created`` / ``updated`` ISO timestamps.
* ``machine``: ``cpu``, ``arch``, ``logical_cores``, ``physical_cores``, ``usable_cores``,
  ``isa`` (list of flags such as ``avx2``, ``avx512f``, ``avx512_vnni``, ``neon``), ``memory_gb``,
  ``os``, ``load_average`` (1/5/15 min when the run started).
* ``runtimes``: package → version or null (``python``, ``edgemark``, ``numpy``, ``opencv``,
  ``onnxruntime``, ``openvino``, ``ai_edge_litert``, ``tflite_runtime``, ``tensorflow``, ``torch``, ``onnx``).
* ``settings``: ``dataset``, ``data_root``, ``image_root``, ``labels``, ``limit``, ``threads`` [int],
  ``batches`` [int], ``runs``, ``warmup``, ``reference`` {``threads``, ``batch``} (the plot/peer
  setting), ``accuracy_threads``, ``isolated_processes``.
* ``models``: one record per model file × runtime (and per peer), sorted by ``id``:
  ``id``, ``kind`` ("edgemark" | "peer"), ``peer`` (null | "torch_eager" | "ort_default_argmax"),
  ``name``, ``file``, ``files`` [all files on disk], ``sha256``, ``size_bytes``, ``format``, ``runtime``,
  ``runtime_version``, ``precision``, ``architecture``, ``source``, ``source_sha256`` (the file it
  was converted from), ``origin_sha256`` (the first source of its conversion chain, e.g. the
  checkpoint behind an OpenVINO file converted from an ONNX file; peers share it), ``scheme``,
  ``num_points``, ``input_size`` [w, h], ``decoder``, ``graph`` ({``macs`` per face, ``params``,
  ``source`` ONNX counted, ``macs_by_op``} or null), ``latency`` [cell], ``memory``
  ({``peak_rss_mb``, ``baseline_peak_rss_mb``, ``baseline_rss_mb``, ``scope``}), ``load_ms``
  {threads: ms}, ``accuracy`` (below), ``flip_test`` (torch peer only), ``error`` (only when
  measuring failed).
* latency cell: ``threads``, ``batch``, ``runs``, ``warmup``, ``raw`` and ``predict`` (each
  {``runs``, ``median_ms``, ``p90_ms``, ``min_ms``, ``mean_ms``, ``max_ms``} per call of ``batch`` faces),
  ``overhead_ratio`` (predict median / raw median), ``faces_per_s`` {``raw``, ``predict``},
  ``gmacs_per_s`` (raw call), or ``error`` when the runtime could not run that setting.
* ``accuracy``: ``dataset``, ``labels``, ``limit``, ``data_root``, ``image_root``, ``count``,
  ``nme`` (%), ``fr_10`` (%), ``auc_10`` (0–1), ``normaliser``, ``subsets`` {name: {``nme``,
  ``count``, ``fr_10``, ``auc_10``}} (AFLW2000-3D: ``yaw 0-30`` / ``yaw 30-60`` / ``yaw 60-90``;
  300W: ``common`` / ``challenge`` …), ``subset_mean_nme`` (AFLW2000-3D), ``per_face_nme``
  [% or null], ``seconds``.
* ``skipped``: [{``file``, ``error``}] model files found but not readable (not measured).
* ``comparisons``: edgemark vs peers at the reference setting: ``model``, ``peer``, ``peer_kind``,
  ``threads``, ``batch``, ``latency_ratio`` (edgemark predict median / peer's), ``nme_ratio``.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

SCHEMA_VERSION = 1

REQUIRED_TOP = ("schema_version", "machine", "runtimes", "settings", "models")
REQUIRED_MODEL = ("id", "kind", "peer", "name", "file", "sha256", "size_bytes", "format", "runtime", "precision",
                  "scheme", "input_size", "decoder", "graph", "latency")
REQUIRED_CELL = ("threads", "batch", "runs", "warmup")
REQUIRED_STATS = ("runs", "median_ms", "p90_ms", "min_ms", "mean_ms", "max_ms")
REQUIRED_ACCURACY = ("dataset", "limit", "count", "nme", "fr_10", "auc_10", "subsets", "per_face_nme")


class ResultsSchemaError(ValueError):
    """results.json does not follow the documented schema."""


# --------------------------------------------------------------------------- results.json


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf → null, numpy → Python."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def load_results(path: str | Path) -> dict[str, Any] | None:
    """An existing results.json (None when absent); refuses other schema versions."""
    path = Path(path)
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    if data.get("schema_version") != SCHEMA_VERSION:
        raise ResultsSchemaError(f"{path} has schema_version {data.get('schema_version')!r}, this edgemark writes "
                                 f"{SCHEMA_VERSION}: use another --out folder")
    return data


def save_results(path: str | Path, data: dict[str, Any]) -> None:
    """Write atomically (temp file + rename): a run killed mid-write leaves the previous file intact."""
    path = Path(path)
    data["comparisons"] = peer_comparisons(data)
    fd, tmp = tempfile.mkstemp(prefix=".results.", suffix=".json", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(_clean(data), f, indent=1, allow_nan=False)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; results are meant to be shared
    os.replace(tmp, path)


def _need(mapping: Any, keys: Iterable[str], where: str) -> None:
    if not isinstance(mapping, dict):
        raise ResultsSchemaError(f"{where} must be an object, got {type(mapping).__name__}")
    missing = [k for k in keys if k not in mapping]
    if missing:
        raise ResultsSchemaError(f"{where} lacks {missing}")


def validate_results(data: dict[str, Any]) -> dict[str, Any]:
    """Check ``data`` against the documented schema; return it, or raise ResultsSchemaError."""
    _need(data, REQUIRED_TOP, "results")
    if data["schema_version"] != SCHEMA_VERSION:
        raise ResultsSchemaError(f"schema_version {data['schema_version']!r} != {SCHEMA_VERSION}")
    _need(data["machine"], ("cpu", "isa", "logical_cores"), "machine")
    _need(data["runtimes"], ("python", "numpy", "opencv", "onnxruntime", "openvino", "ai_edge_litert"), "runtimes")
    _need(data["settings"], ("dataset", "threads", "batches", "runs", "warmup", "reference"), "settings")
    if not isinstance(data["models"], list):
        raise ResultsSchemaError("models must be a list")
    for m in data["models"]:
        where = f"model {m.get('id', '?')}"
        _need(m, REQUIRED_MODEL, where)
        if m["kind"] not in ("edgemark", "peer"):
            raise ResultsSchemaError(f"{where}: kind {m['kind']!r} is not 'edgemark' or 'peer'")
        if m["graph"] is not None:
            _need(m["graph"], ("macs", "params", "source"), f"{where} graph")
        for cell in m["latency"]:
            _need(cell, REQUIRED_CELL, f"{where} latency cell")
            if "error" not in cell:
                _need(cell, ("raw", "predict", "overhead_ratio", "faces_per_s"), f"{where} latency cell")
                _need(cell["raw"], REQUIRED_STATS, f"{where} raw stats")
                _need(cell["predict"], REQUIRED_STATS, f"{where} predict stats")
        if m.get("accuracy") is not None:
            _need(m["accuracy"], REQUIRED_ACCURACY, f"{where} accuracy")
    return data


# --------------------------------------------------------------------------- selection helpers


def cell_at(model: dict[str, Any], threads: int, batch: int) -> dict[str, Any] | None:
    """The successful latency cell of ``model`` at (threads, batch), or None."""
    for c in model.get("latency", []):
        if c["threads"] == threads and c["batch"] == batch and "error" not in c:
            return c
    return None


def current_accuracy(model: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any] | None:
    """The model's accuracy when it was measured with the current dataset settings, else None."""
    acc = model.get("accuracy")
    if not acc:
        return None
    keys = ("dataset", "labels", "limit", "data_root", "image_root")
    return acc if all(acc.get(k) == settings.get(k) for k in keys) else None


def peer_comparisons(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Edgemark rows against the peers of the same checkpoint and input size, at the reference setting."""
    settings = data.get("settings", {})
    ref = settings.get("reference") or {}
    t, b = ref.get("threads"), ref.get("batch")
    models = data.get("models", [])
    rows = []
    for m in models:
        origin = m.get("origin_sha256") or m.get("source_sha256")
        if m["kind"] != "edgemark" or not origin:
            continue
        mc, ma = cell_at(m, t, b), current_accuracy(m, settings)
        for p in models:
            if p["kind"] != "peer" or p.get("origin_sha256") != origin or p.get("input_size") != m["input_size"]:
                continue
            pc, pa = cell_at(p, t, b), current_accuracy(p, settings)
            rows.append({
                "model": m["id"], "peer": p["id"], "peer_kind": p["peer"], "threads": t, "batch": b,
                "latency_ratio": (round(mc["predict"]["median_ms"] / pc["predict"]["median_ms"], 4)
                                  if mc and pc else None),
                "nme_ratio": round(ma["nme"] / pa["nme"], 4) if ma and pa and ma.get("nme") and pa.get("nme") else None,
            })
    return rows


# --------------------------------------------------------------------------- markdown


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _table(header: list[str], rows: list[list[str]], text_columns: int = 3) -> list[str]:
    if not rows:
        return ["_(nothing measured)_", ""]
    align = ["---" if i < text_columns else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines + [""]


def _label(m: dict[str, Any]) -> list[str]:
    return [f"`{m['name']}`", m["runtime"], m["precision"]]


def _mb(nbytes: Any) -> str:
    return _fmt(nbytes / 1e6, 2) if isinstance(nbytes, (int, float)) else "–"


def _accuracy_section(data: dict[str, Any]) -> list[str]:
    settings = data["settings"]
    rows = [(m, current_accuracy(m, settings)) for m in data["models"]]
    rows = sorted([(m, a) for m, a in rows if a and a.get("nme") is not None], key=lambda x: (x[1]["nme"], x[0]["id"]))
    subset_names = list(dict.fromkeys(k for _, a in rows for k in a.get("subsets", {})))
    header = ["model", "runtime", "precision", "NME %", "FR@0.1 %", "AUC@0.1", *[f"{s} NME %" for s in subset_names]]
    if any("subset_mean_nme" in a for _, a in rows):
        header.append("bin mean %")
    header += ["faces", "size MB", "params M", "GMACs"]
    body = []
    for m, a in rows:
        g = m.get("graph") or {}
        r = [*_label(m), _fmt(a["nme"], 3), _fmt(a["fr_10"]), _fmt(a["auc_10"], 4)]
        r += [_fmt((a["subsets"].get(s) or {}).get("nme"), 3) for s in subset_names]
        if "bin mean %" in header:
            r.append(_fmt(a.get("subset_mean_nme"), 3))
        r += [str(a["count"]), _mb(m.get("size_bytes")),
              _fmt(g["params"] / 1e6, 3) if g.get("params") else "–",
              _fmt(g["macs"] / 1e9, 3) if g.get("macs") else "–"]
        body.append(r)
    stale = [m["name"] for m in data["models"] if m.get("accuracy") and not current_accuracy(m, settings)]
    labels = f" ({settings['labels']} labels)" if settings.get("labels") else ""
    lines = ["## Accuracy", "", f"Dataset `{settings['dataset']}`" + labels
             + (f", first {settings['limit']} faces" if settings.get("limit") else ", all faces")
             + ". NME in % of the dataset's standard normaliser; FR@0.1 = faces with NME > 10 %; AUC@0.1 of the "
             "cumulative error curve up to 10 %. Sorted by NME.", ""]
    lines += _table(header, body)
    if stale:
        lines += [f"Not shown (accuracy measured with other dataset settings): {', '.join(stale)}", ""]
    return lines


def _latency_sections(data: dict[str, Any]) -> list[str]:
    settings = data["settings"]
    lines = ["## Latency", "",
             "Per call of `batch` faces, milliseconds. *raw* = `backend.run` on a ready tensor; *predict* = the whole "
             "`Predictor.predict` (crop + inference + decode + mapping back) on a real image. "
             f"{settings['warmup']} warm-up calls, then {settings['runs']} timed calls; median, p90, min. "
             "faces/s from the predict median; GMAC/s from the raw median; peak RSS of the measuring process. "
             "Sorted by predict median.", ""]
    header = ["model", "runtime", "precision", "raw med", "raw p90", "raw min", "predict med", "predict p90",
              "predict min", "predict/raw", "faces/s", "GMAC/s", "peak MB"]
    for t in settings["threads"]:
        for b in settings["batches"]:
            rows = [(m, cell_at(m, t, b)) for m in data["models"]]
            rows = sorted([(m, c) for m, c in rows if c], key=lambda x: x[1]["predict"]["median_ms"])
            body = [[*_label(m), _fmt(c["raw"]["median_ms"]), _fmt(c["raw"]["p90_ms"]), _fmt(c["raw"]["min_ms"]),
                     _fmt(c["predict"]["median_ms"]), _fmt(c["predict"]["p90_ms"]), _fmt(c["predict"]["min_ms"]),
                     _fmt(c["overhead_ratio"]), _fmt(c["faces_per_s"]["predict"], 1), _fmt(c.get("gmacs_per_s")),
                     _fmt((m.get("memory") or {}).get("peak_rss_mb"), 0)] for m, c in rows]
            lines += [f"### threads = {t}, batch = {b}", ""] + _table(header, body)
    return lines


OVERHEAD_TARGET = 1.15  # predict ÷ raw for every file whose raw call takes >= 1 ms (the overhead issue's aim)


OWN_TARGET_MS = 0.15  # the SDK's own cost per face for the bundled default at batch 1 (the overhead issue's aim)


def _bundled_default(m: dict[str, Any]) -> bool:
    """Whether a row is one of the bundled default model's files (``sdk/models``)."""
    return m["kind"] == "edgemark" and "/sdk/models/" in "/" + m["file"]


def _own_ms(cell: dict[str, Any], key: str = "sdk_own") -> float | None:
    """The SDK's own ms per face: predict minus the backend calls inside it, median of the per-call differences
    (``key="sdk_prepare"``: of that, the time inside ``prepare_faces``, the crop stage)."""
    own = cell.get(key)
    return None if own is None else own["median_ms"] / cell["batch"]


def _crop_bound(cell: dict[str, Any]) -> bool:
    """Whether the crop stage alone (``prepare_faces``) costs more than the ratio target leaves beside the raw call:
    such a cell cannot reach ``OVERHEAD_TARGET`` with its file's crop rule, whatever the rest of the SDK costs."""
    prepare = _own_ms(cell, "sdk_prepare")
    return prepare is not None and prepare > (OVERHEAD_TARGET - 1) * cell["raw"]["median_ms"] / cell["batch"]


def _overhead_text(cell: dict[str, Any] | None) -> str:
    if not cell:
        return "–"
    extra = (cell["predict"]["median_ms"] - cell["raw"]["median_ms"]) / cell["batch"]
    own, prepare = _own_ms(cell), _own_ms(cell, "sdk_prepare")
    parts = [f"{extra:+.2f}"] + ([] if own is None else [f"own {own:.2f}"]) + (
        [] if prepare is None else [f"crop {prepare:.2f}"])
    return f"{_fmt(cell['overhead_ratio'])} ({'; '.join(parts)})"


def _default_own_text(m: dict[str, Any], cell: dict[str, Any]) -> str:
    """"runtime precision tN own (crop x)" of one of the bundled default's cells."""
    prepare = _own_ms(cell, "sdk_prepare")
    return (f"{m['runtime']} {m['precision']} t{cell['threads']} {_own_ms(cell):.3f}"
            + ("" if prepare is None else f" (crop {prepare:.3f})"))


def _overhead_section(data: dict[str, Any]) -> list[str]:
    settings = data["settings"]
    grid = [(t, b) for t in settings["threads"] for b in settings["batches"]]
    header = ["model", "runtime", "precision", *[f"t{t} b{b}" for t, b in grid]]
    body, target_cells, own = [], [], []
    for m in sorted(data["models"], key=lambda m: m["id"]):
        cells = [cell_at(m, t, b) for t, b in grid]
        if any(cells):
            body.append([*_label(m), *[_overhead_text(c) for c in cells]])
            target_cells += [c for c in cells if m.get("peer") is None and c and c["batch"] == 1
                             and "frame" not in c and c["raw"]["median_ms"] >= 1.0]
            if _bundled_default(m):
                own += [_default_own_text(m, c) for c in cells
                        if c and c["batch"] == 1 and "frame" not in c and _own_ms(c) is not None]
    summary = ""
    if target_cells:
        missed = [c for c in target_cells if c["overhead_ratio"] > OVERHEAD_TARGET]
        summary = (f"edgemark files' batch-1 cells whose raw call takes ≥ 1 ms and whose ratio is ≤ "
                   f"{OVERHEAD_TARGET:.2f}: {len(target_cells) - len(missed)} of {len(target_cells)}.")
        timed = [c for c in missed if c.get("sdk_prepare") is not None]
        if timed:
            summary += (f" Of the {len(missed)} above it, {sum(map(_crop_bound, timed))} of the {len(timed)} timed "
                        f"stage by stage are crop-bound: their crop stage alone (\"crop\": the time inside "
                        f"`prepare_faces` — box checks, crop geometry, the crop and any numpy normalisation) takes "
                        f"more than {OVERHEAD_TARGET - 1:.2f} × the raw call, so no change elsewhere in the SDK brings "
                        "them to the target with their file's crop rule.")
    if own:
        summary += (f" The SDK's own ms per face (\"own\": each predict's duration minus the backend calls inside "
                    f"it, median over the calls; aim ≤ {OWN_TARGET_MS:.2f}) for the bundled default at batch 1: "
                    + "; ".join(own) + ".")
    return ["## SDK overhead", "",
            "`Predictor.predict` median ÷ raw backend median at each threads (t) × batch (b) setting, and in "
            "brackets what `predict` adds per face in ms: what crop, decode and mapping back add to the inference "
            "itself (1.00 = nothing). The two are timed in turns (a raw call, a predict, …), so both see the same "
            "machine. Files whose decoder runs in the graph (`decoder: in_graph`) include the decoding in the raw "
            "call, as the runtime then does it, and so do the map back and the confidence for files that map back "
            "in the graph (`maps_back`). " + summary, ""] + _table(header, body)


INT8_NOT_FASTER = 1.05  # converters.speedup.NOT_FASTER: below it an INT8 file is flagged


def _paired_speedups(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The bench's INT8/FP32 pairs timed together in one process (``int8_pairs``), as report rows."""
    by_id = {m["id"]: m for m in data["models"]}
    out = []
    for p in data.get("int8_pairs") or []:
        int8, fp32 = by_id.get(p["int8"]), by_id.get(p["fp32"])
        if int8 is None or fp32 is None or "error" in p:
            continue
        basis = p.get("basis", "raw")
        cells = {}
        for t in p["threads"]:
            c = p.get(f"threads_{t}")
            if c:
                f, i = (c["fp32_ms"], c["int8_ms"]) if basis == "raw" else (c["fp32_predict_ms"], c["int8_predict_ms"])
                cells[t] = (f, i, f / i)
        if cells:
            out.append({"int8": int8, "fp32": fp32, "cells": cells, "basis": basis,
                        "not_faster": min(c[2] for c in cells.values()) < INT8_NOT_FASTER})
    return sorted(out, key=lambda r: (r["int8"]["name"], r["int8"]["runtime"]))


def int8_speedups(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Each INT8 row against the FP32 row of the same model and runtime: speed-up per thread count (raw call, or
    the whole predict where only one of the two decodes in its graph)."""
    rows = [m for m in data["models"] if m["kind"] == "edgemark" and not m.get("box_rule")]
    by_key = {(m["name"], m["runtime"]): m for m in rows}
    out = []
    for m in rows:
        if m["precision"] != "int8" or "_int8" not in m["name"]:
            continue
        fp32 = by_key.get((m["name"].replace("_int8", "_fp32"), m["runtime"]))
        if fp32 is None:
            continue
        # where one file decodes in its graph and the other in numpy their raw calls do different work:
        # compare what the user gets, the whole predict
        basis = "raw" if _decodes_in_graph(m) == _decodes_in_graph(fp32) else "predict"
        cells = {}
        for t in data["settings"]["threads"]:
            a, b = cell_at(fp32, t, 1), cell_at(m, t, 1)
            if a and b:
                fa, fb = a[basis]["median_ms"], b[basis]["median_ms"]
                cells[t] = (fa, fb, fa / fb)
        if cells:
            out.append({"int8": m, "fp32": fp32, "cells": cells, "basis": basis,
                        "not_faster": min(c[2] for c in cells.values()) < INT8_NOT_FASTER})
    return sorted(out, key=lambda r: (r["int8"]["name"], r["int8"]["runtime"]))


def _decodes_in_graph(row: dict[str, Any]) -> tuple[bool, bool]:
    """(decodes in its graph, maps back in its graph): what the raw call does beyond the network."""
    params = row.get("decoder_params") or {}
    return bool(params.get("in_graph")), bool(params.get("maps_back"))


def _pair_method(data: dict[str, Any]) -> str:
    """How the pairs were timed, in words (older results timed the two files call by call)."""
    methods = {p.get("method") for p in data.get("int8_pairs") or [] if "error" not in p}
    if not methods - {None}:
        return "FP32 raw, INT8 raw, FP32 predict, INT8 predict in turns"
    return ("raw call and predict in turns within each file, in " + " / ".join(sorted(m for m in methods if m))
            + " of untimed calls, the two files' blocks in turns: a file called right after the other ran up to "
            "4× slower while the other's thread pool was still busy")


def int8_speedup_section(data: dict[str, Any]) -> list[str]:
    paired = _paired_speedups(data)
    rows = paired or int8_speedups(data)
    if not rows:
        return []
    threads = data["settings"]["threads"]
    header = ["model", "runtime", "timed", *[f"FP32 / INT8 ms t{t}" for t in threads],
              *[f"speed-up t{t}" for t in threads], "verdict"]
    body = []
    for r in rows:
        c = r["cells"]
        body.append([f"`{r['int8']['name']}`", r["int8"]["runtime"], r["basis"],
                     *[f"{c[t][0]:.2f} / {c[t][1]:.2f}" if t in c else "–" for t in threads],
                     *[f"{c[t][2]:.2f}×" if t in c else "–" for t in threads],
                     "**not faster**" if r["not_faster"] else "faster"])
    return ["## INT8 against FP32", "",
            (f"Each INT8 file and its FP32 sibling timed in one process (`converters.speedup`, {_pair_method(data)}), "
             "batch 1: rows timed minutes apart in their own processes are too noisy for a ratio. "
             if paired else "Raw backend call, batch 1, same run. ")
            + "Raw call where both files do the same work in their graphs; the whole `predict` where one decodes or "
            "normalises in its graph and the other does not (OpenVINO INT8 files keep their maps). An INT8 file "
            f"whose speed-up is below {INT8_NOT_FASTER:.2f}× at any thread count is flagged: it costs accuracy and "
            "buys no time.", ""] + _table(header, body, text_columns=3)


def _peer_section(data: dict[str, Any]) -> list[str]:
    comps = data.get("comparisons") or peer_comparisons(data)
    if not comps:
        return []
    by_id = {m["id"]: m for m in data["models"]}
    settings = data["settings"]
    ref = settings["reference"]
    peer_kinds = [k for k in ("torch_eager", "ort_default_argmax") if any(c["peer_kind"] == k for c in comps)]
    names = {"torch_eager": "torch eager", "ort_default_argmax": "ORT default + argmax"}
    header = ["model", "runtime", "precision", "NME %", "predict ms"]
    for k in peer_kinds:
        header += [f"latency × vs {names[k]}", f"NME × vs {names[k]}"]
    body = []
    for mid in dict.fromkeys(c["model"] for c in comps):
        m = by_id[mid]
        a, c = current_accuracy(m, settings), cell_at(m, ref["threads"], ref["batch"])
        row = [*_label(m), _fmt(a["nme"], 3) if a else "–", _fmt(c["predict"]["median_ms"]) if c else "–"]
        for k in peer_kinds:
            comp = next((x for x in comps if x["model"] == mid and x["peer_kind"] == k), None)
            row += [_fmt(comp and comp["latency_ratio"]), _fmt(comp and comp["nme_ratio"], 3)]
        body.append(row)
    peers = [by_id[p] for p in dict.fromkeys(c["peer"] for c in comps)]
    peer_rows = []
    for p in peers:
        a, c = current_accuracy(p, settings), cell_at(p, ref["threads"], ref["batch"])
        peer_rows.append([*_label(p), _fmt(a["nme"], 3) if a else "–",
                          _fmt(c["predict"]["median_ms"]) if c else "–"])
    return (["## Peers", "",
             f"Same machine, same run, threads = {ref['threads']}, batch = {ref['batch']}. *torch eager*: the source "
             "checkpoint in PyTorch with the authors' decoding, through the same crop/mapping path. *ORT default + "
             "argmax*: ONNX Runtime with default SessionOptions (thread count set) and plain argmax decoding. "
             "Ratios are edgemark ÷ peer: below 1 means edgemark is faster / more accurate.", ""]
            + _table(["peer", "runtime", "precision", "NME %", "predict ms"], peer_rows) + _table(header, body))


DETECTING_RULES = ("detector", "pipeline")
BOX_RULE_TEXT = {None: "protocol box", "gt": "protocol box, peer's rule", "gt_own": "protocol box → dlib's box",
                 "detector": "edgemark's detector", "pipeline": "own detector"}


def _versus_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of the headline table: landmark peers and the bundled default (protocol box and detector)."""
    peers = [m for m in data["models"] if m["kind"] == "landmark_peer"]
    if not peers:
        return []
    defaults = [m for m in data["models"] if _bundled_default(m)]
    order = {"edgemark": 0, "mediapipe_facemesh": 1, "dlib_68": 2}
    rows = defaults + peers
    return sorted(rows, key=lambda m: (order.get(m.get("peer") or "edgemark", 3),
                                       m.get("box_rule") in DETECTING_RULES, m["name"]))


def versus_section(data: dict[str, Any]) -> list[str]:
    """"edgemark vs MediaPipe vs dlib": NME (both label sets, yaw bins), latency at 1 and 2 threads, batch 1."""
    rows = _versus_rows(data)
    if not rows:
        return []
    settings = data["settings"]
    threads = [t for t in (1, 2) if t in settings["threads"]]
    other = next((m["accuracy"]["other_labels"]["labels"] for m in rows
                  if (m.get("accuracy") or {}).get("other_labels")), None)
    header = ["model", "runtime", "boxes", f"NME % ({settings.get('labels') or 'labels'})", "yaw 0-30", "yaw 30-60",
              "yaw 60-90"]
    if other:
        header.append(f"NME % ({other})")
    header += ["found %", "NME % on photos all found"]
    detecting = [m for m in rows if m.get("box_rule") in DETECTING_RULES and current_accuracy(m, settings)]
    common = None
    if detecting:  # the photos every detecting row found: their NMEs are comparable
        found = [np.isfinite(np.array([np.nan if v is None else v for v in current_accuracy(m, settings)["per_face_nme"]],
                                      dtype=np.float64)) for m in detecting]
        common = np.logical_and.reduce(found)
    for t in threads:
        header += [f"raw ms t{t}", f"predict ms t{t}", f"predict/raw t{t}"]
    header += ["track fps / NME % (t2)"]
    body = []
    for m in rows:
        a = current_accuracy(m, settings) or {}
        sub = a.get("subsets") or {}
        r = [f"`{m['name']}`", m["runtime"], BOX_RULE_TEXT.get(m.get("box_rule"), m.get("box_rule")),
             _fmt(a.get("nme"), 3), *[_fmt((sub.get(f"yaw {b}") or {}).get("nme"), 3) for b in ("0-30", "30-60", "60-90")]]
        if other:
            r.append(_fmt((a.get("other_labels") or {}).get("nme"), 3))
        r.append(_fmt(a.get("found_pct"), 1) if "found_pct" in a else "all")
        if common is not None and m in detecting and common.any():
            per_face = np.array([np.nan if v is None else v for v in a["per_face_nme"]], dtype=np.float64)
            r.append(f"{np.mean(per_face[common]):.3f} ({int(common.sum())})")
        else:
            r.append("–")
        for t in threads:
            c = cell_at(m, t, 1)
            r += [_fmt(c["raw"]["median_ms"]) if c else "–", _fmt(c["predict"]["median_ms"]) if c else "–",
                  _fmt(c["overhead_ratio"]) if c else "–"]
        track = ((m.get("video") or {}).get(str(max(threads) if threads else 2)) or {}).get("track")
        r.append(f"{track['fps']:.0f} / {_fmt(track['nme'], 2)}" if track else "–")
        body.append(r)
    return ["## edgemark vs MediaPipe vs dlib", "",
            "One run, batch 1. *protocol box*: the ground-truth-landmark box the NME protocol gives every model, read "
            "by each model's own rule (edgemark's crop rule; MediaPipe's ROI = long side × 1.5, no rotation without "
            "keypoints; dlib's box as given, or mapped onto the HOG boxes dlib was trained on). *edgemark's "
            "detector* / *own detector*: the row finds the faces itself in each photo (edgemark: BlazeFace + box "
            "adapter + one re-crop; MediaPipe: BlazeFace short-range + its rotated ROI; dlib: its HOG detector), "
            "NME over the photos where it found the face (NME ≤ 10 %) and over the photos every such row found (their "
            "count in brackets: the like-for-like figure), latency per 640×480 frame (detector + landmarks). *raw*: the landmark network's (or regressor's) own call on a ready input. *track*: the "
            "row's video mode on a 90-frame synthetic moving face (edgemark's `LandmarkTracker`, MediaPipe's "
            "ROI-from-landmarks), decode included. MediaPipe's 468 points are read as 68 through an approximate "
            "correspondence (jaw contour: `benchmarks/facemesh.py`).", ""] + _table(header, body) + _versus_paired(data)


def _versus_paired(data: dict[str, Any]) -> list[str]:
    """The same-runtime comparison timed in turns in one process (``versus_mediapipe``), as a small table."""
    rows = [v for v in data.get("versus_mediapipe") or [] if "error" not in v]
    if not rows:
        return []
    header = ["threads", "raw ms edgemark / MediaPipe", "predict ms, protocol box", "predict ms, 640×480 frame"]
    body = [[str(v["threads"]), *[f"{v['edgemark'][k]:.2f} / {v['mediapipe'][k]:.2f}"
                                  for k in ("raw_ms", "predict_ms", "frame_ms")]] for v in rows]
    return ["", "The bundled INT8 TFLite default against MediaPipe Face Mesh on LiteRT, **timed in turns in one "
            "process** (edgemark raw, MediaPipe raw, edgemark predict, …, photo 0 with its protocol box; a frame: "
            "each finds the face itself), the like-for-like latency the rows above, timed minutes apart in their own "
            "processes, cannot give on this shared machine:", ""] + _table(header, body)


PIPELINE_STAGES = ("decode_jpeg", "detect", "crop", "inference", "decoding", "map_back", "recrop_pass")


def pipeline_section(data: dict[str, Any]) -> list[str]:
    rows = []
    for m in data["models"]:
        for threads, p in sorted((m.get("pipeline") or {}).items(), key=lambda kv: int(kv[0])):
            if "error" in p:
                rows.append(_label(m) + [threads] + ["error"] * (len(PIPELINE_STAGES) + 3))
                continue
            st = p["stages_ms"]
            rows.append(_label(m) + [threads] + [_fmt(st.get(k), 2) for k in PIPELINE_STAGES]
                        + [_fmt(p["predict_no_boxes_ms"], 2), _fmt(p["predict_with_boxes_ms"], 2),
                           _fmt(p["no_boxes_over_boxes"], 2)])
    if not rows:
        return []
    header = ["model", "runtime", "precision", "threads", "JPEG decode", "detect", "crop", "inference", "decoding",
              "map back", "re-crop pass", "predict(image)", "predict(image, boxes)", "ratio"]
    return ["## The real path: `predict(image)` without boxes, 640×480, per stage (ms, medians)", "",
            "Each stage timed alone on the same inputs; `predict(image)` = detect + crop + inference + decoding + "
            "mapping back + one re-crop pass from the landmarks (JPEG decode is the caller's, listed for scale). "
            "Ratio = predict(image) ÷ predict(image, boxes).", ""] + _table(header, rows, text_columns=3) + [""]


def markdown_report(data: dict[str, Any]) -> str:
    machine, runtimes, settings = data["machine"], data["runtimes"], data["settings"]
    ref = settings["reference"]
    versions = ", ".join(f"{k} {v}" for k, v in runtimes.items() if v)
    lines = [
        "# edgemark benchmark", "",
        f"Machine: {machine['cpu']} ({machine.get('arch')}), {machine.get('usable_cores')} usable cores of "
        f"{machine['logical_cores']} logical, ISA: {', '.join(machine['isa']) or 'n/a'}; {machine.get('os')}; "
        f"load average at start {machine.get('load_average')}.", "",
        f"Runtimes: {versions}.", "",
        f"Updated {data.get('updated', '')}. Regenerate with `edgemark bench` (command in the README); "
        "raw numbers in `results.json`.", "",
        f"![latency vs NME](latency_vs_nme.png)", "",
        f"*Latency (predict median per call, threads = {ref['threads']}, batch = {ref['batch']}) against NME; "
        "the dashed line is the Pareto front (nothing both faster and more accurate).*", "",
    ]
    lines += versus_section(data)
    lines += _accuracy_section(data)
    lines += ["![CED](ced.png)", ""]
    lines += _latency_sections(data)
    lines += _overhead_section(data)
    lines += int8_speedup_section(data)
    lines += pipeline_section(data)
    lines += _peer_section(data)
    errors = [(m["name"], m["runtime"], m["error"]) for m in data["models"] if m.get("error")]
    errors += [(m["name"], m["runtime"], f"threads={c['threads']} batch={c['batch']}: {c['error']}")
               for m in data["models"] for c in m.get("latency", []) if c.get("error")]
    if errors:
        lines += ["## Errors", ""] + [f"- `{n}` [{r}]: {e}" for n, r, e in errors] + [""]
    scope = {(m.get("memory") or {}).get("scope") for m in data["models"] if m.get("memory")}
    lines += ["## Method", "",
              "- Batch *N* = *N* face boxes of one real image in one `predict` call (the same real box repeated, so "
              "every crop costs the same); the raw call gets the matching *N*-face tensor.",
              "- The garbage collector is paused while timing; threads = the runtime's intra-op threads.",
              "- MACs and parameters are counted from the ONNX graph (Conv, ConvTranspose, Gemm, MatMul and their "
              "quantised forms) per face; OpenVINO/TFLite files use the ONNX they were converted from.",
              "- Peak memory: peak resident set (VmHWM on Linux, else ru_maxrss) of the process that measured the "
              f"model ({', '.join(sorted(s for s in scope if s)) or 'n/a'}), read after loading it and timing every "
              "setting: Python, numpy, OpenCV and the runtime included.",
              "- Accuracy does not depend on threads or batch: it is measured once per model file, face by face, "
              "through the same `Predictor`, and 98-point predictions are mapped to the dataset's 68 points.", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- plots

_RUNTIME_COLORS = {"onnxruntime": "#1f77b4", "openvino": "#9467bd", "litert": "#2ca02c", "tflite": "#2ca02c",
                   "torch": "#d62728"}
_PRECISION_MARKERS = {"fp32": "o", "fp16": "s", "int8": "^", "mixed": "D"}
_LANDMARK_PEER_STYLE = {"mediapipe_facemesh": ("*", "#ff7f0e", "MediaPipe Face Mesh"),
                        "dlib_68": ("P", "#8c564b", "dlib 68 ERT")}


def plot_points(data: dict[str, Any]) -> list[dict[str, Any]]:
    """One point per model × runtime × precision with latency at the reference setting and current accuracy."""
    settings = data["settings"]
    ref = settings["reference"]
    pts = []
    for m in data["models"]:
        if m.get("box_rule") in DETECTING_RULES:  # its latency includes the detector: not on this plot
            continue
        c, a = cell_at(m, ref["threads"], ref["batch"]), current_accuracy(m, settings)
        if c and a and a.get("nme") is not None and math.isfinite(a["nme"]):
            pts.append({"model": m, "x": c["predict"]["median_ms"] / ref["batch"], "y": a["nme"]})
    return pts


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of points no other point beats on both axes (lower x and lower y are better), by x."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], points[i][1]))
    front, best = [], math.inf
    for i in order:
        if points[i][1] < best:
            front.append(i)
            best = points[i][1]
    return front


def _overlap(a: Any, b: Any) -> float:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w * h if w > 0 and h > 0 else 0.0


def place_labels(ax: Any, xy: list[tuple[float, float]], texts: list[str], fontsize: float = 7.5,
                 obstacles: Sequence[Any] = ()) -> list[Any]:
    """Greedy label placement: each label takes the candidate offset that overlaps least with
    earlier labels, the data points, the ``obstacles`` (artists such as the legend) and the axes
    border; a leader line marks far placements. Call after the layout is final."""
    from matplotlib.transforms import Bbox

    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax_box = ax.get_window_extent(renderer)
    to_px = fig.dpi / 72.0
    pix = [ax.transData.transform(p) for p in xy]
    r = 5.0 * to_px
    markers = [Bbox.from_extents(px - r, py - r, px + r, py + r) for px, py in pix]
    placed: list[Any] = [a.get_window_extent(renderer) for a in obstacles]
    base = [(8, 4), (8, -12), (-8, 4), (-8, -12), (0, 10), (0, -18), (14, 14), (14, -22), (-14, 14), (-14, -22)]
    candidates = base + [(dx * k, dy * k) for k in (2, 3, 4, 5) for dx, dy in base]
    artists = []
    for i in sorted(range(len(xy)), key=lambda i: pix[i][0]):
        probe = ax.annotate(texts[i], xy[i], fontsize=fontsize)
        ext = probe.get_window_extent(renderer)
        probe.remove()
        w, h = ext.width * 1.04, ext.height * 1.1
        best = None
        for dx, dy in candidates:
            x = pix[i][0] + dx * to_px
            x0 = x if dx > 0 else x - w if dx < 0 else x - w / 2
            y0 = pix[i][1] + dy * to_px
            box = Bbox.from_extents(x0, y0, x0 + w, y0 + h)
            cost = 4 * sum(_overlap(box, o) for o in placed)
            cost += sum(_overlap(box, o) for j, o in enumerate(markers) if j != i)
            cost += 10 * (w * h - _overlap(box, ax_box)) + 0.02 * (abs(dx) + abs(dy)) * to_px
            if best is None or cost < best[0]:
                best = (cost, dx, dy, box)
            if cost < 1.0:
                break
        _, dx, dy, box = best
        ha = "left" if dx > 0 else "right" if dx < 0 else "center"
        far = abs(dx) > 16 or abs(dy) > 24
        artists.append(ax.annotate(texts[i], xy[i], xytext=(dx, dy), textcoords="offset points", fontsize=fontsize,
                                   ha=ha, va="bottom",
                                   arrowprops={"arrowstyle": "-", "color": "0.6", "lw": 0.6} if far else None))
        placed.append(box)
    return artists


_RUNTIME_SHORT = {"onnxruntime": "ORT", "openvino": "OV", "litert": "LiteRT", "tflite": "TFLite", "torch": "torch"}


def _short_name(m: dict[str, Any], common: str) -> str:
    name = m["name"]
    stem = common.rstrip("_")
    if common and name.startswith(common) and len(name) > len(common):
        name = name[len(common):].lstrip("_")
    elif stem and name.startswith(stem + " "):  # a peer: "<arch>_<size> torch eager"
        name = name[len(stem) + 1:]
    return f"{name} · {_RUNTIME_SHORT.get(m['runtime'], m['runtime'])}" if m["kind"] == "edgemark" else name


def plot_latency_vs_nme(data: dict[str, Any], path: str | Path) -> Path | None:
    """Scatter of predict latency vs NME at the reference setting, with the Pareto front; None when empty."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    pts = plot_points(data)
    if not pts:
        return None
    ref = data["settings"]["reference"]
    xs = np.array([p["x"] for p in pts])
    ys = np.array([p["y"] for p in pts])
    fig, ax = plt.subplots(figsize=(10, 6.5) if len(pts) <= 16 else (12, 8), dpi=130)
    for p in pts:
        m = p["model"]
        color = _RUNTIME_COLORS.get(m["runtime"], "#7f7f7f")
        marker = _PRECISION_MARKERS.get(m["precision"], "D")
        peer = m["kind"] == "peer"
        if m["kind"] == "landmark_peer":
            marker, color, _ = _LANDMARK_PEER_STYLE.get(m["peer"], ("X", "#7f7f7f", m["peer"]))
            ax.scatter(p["x"], p["y"], s=150, marker=marker, zorder=4, color=color, edgecolors="black", linewidths=0.8)
            continue
        ax.scatter(p["x"], p["y"], s=60, marker=marker, zorder=3, linewidths=1.4,
                   facecolors="none" if peer else color, edgecolors=color if peer else "black")
    front = pareto_front(list(zip(xs, ys)))
    if len(front) > 1:
        fx, fy = xs[front], ys[front]
        ax.step(fx, fy, where="post", ls="--", color="0.45", lw=1.2, zorder=2)
    if xs.max() / max(xs.min(), 1e-9) > 8:
        from matplotlib.ticker import LogLocator, ScalarFormatter

        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(plt.NullFormatter())
    xpad = (xs.max() - xs.min()) * 0.08 or xs.max() * 0.1
    ypad = (ys.max() - ys.min()) * 0.12 or max(ys.max() * 0.02, 0.05)
    if ax.get_xscale() == "log":
        ax.set_xlim(xs.min() / 1.4, xs.max() * 1.6)
    else:
        ax.set_xlim(max(0.0, xs.min() - xpad), xs.max() + xpad * 2.5)
    ax.set_ylim(ys.min() - ypad, ys.max() + ypad * 1.5)
    names = [p["model"]["name"] for p in pts if p["model"]["kind"] == "edgemark"]
    common = os.path.commonprefix(names) if len(names) > 1 else ""
    common = common[: common.rfind("_") + 1] if "_" in common else ""
    labels = [_short_name(p["model"], common) for p in pts]
    settings = data["settings"]
    per = "per face" if ref["batch"] == 1 else f"per face (batch {ref['batch']} ÷ {ref['batch']})"
    ax.set_xlabel(f"Predictor.predict latency, median ms {per}, {ref['threads']} thread(s)")
    limit = f" (first {settings['limit']} faces)" if settings.get("limit") else ""
    ax.set_ylabel(f"NME % on {settings['dataset']}{limit}")
    title = f"Latency vs accuracy — {data['machine']['cpu']}"
    if common:
        title += f"\nmodels: {common.rstrip('_')}_*"
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    runtimes = sorted({p["model"]["runtime"] for p in pts if p["model"]["kind"] != "landmark_peer"})
    precisions = sorted({p["model"]["precision"] for p in pts})
    handles = [Line2D([], [], ls="", marker="o", color=_RUNTIME_COLORS.get(r, "#7f7f7f"), label=r) for r in runtimes]
    handles += [Line2D([], [], ls="", marker=_PRECISION_MARKERS.get(pr, "D"), color="0.3", label=pr)
                for pr in precisions]
    for key, (marker, color, label) in _LANDMARK_PEER_STYLE.items():
        if any(p["model"].get("peer") == key for p in pts):
            handles.append(Line2D([], [], ls="", marker=marker, color=color, markeredgecolor="black", markersize=10,
                                  label=label))
    if any(p["model"]["kind"] == "peer" for p in pts):
        handles.append(Line2D([], [], ls="", marker="o", markerfacecolor="none", color="0.3", label="peer (hollow)"))
    if len(front) > 1:
        handles.append(Line2D([], [], ls="--", color="0.45", label="Pareto front"))
    legend = ax.legend(handles=handles, fontsize=8, loc="best", framealpha=0.85)
    fig.tight_layout()  # before placing labels: placement works in final pixel coordinates
    place_labels(ax, list(zip(xs, ys)), labels, obstacles=[legend])
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_ced(data: dict[str, Any], path: str | Path, best: int = 6, threshold: float = 10.0) -> Path | None:
    """Cumulative error distribution of the ``best`` lowest-NME rows (peers included); None when empty."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from landmarkdata.metrics import auc, ced_curve

    settings = data["settings"]
    rows = [(m, current_accuracy(m, settings)) for m in data["models"]]
    rows = [(m, a) for m, a in rows if a and a.get("per_face_nme") and a.get("nme") is not None]
    rows = sorted(rows, key=lambda x: x[1]["nme"])[:best]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 5), dpi=130)
    for m, a in rows:
        e = np.array([np.nan if v is None else v for v in a["per_face_nme"]], dtype=np.float64)
        x, y = ced_curve(e, threshold)
        ls = "--" if m["kind"] == "peer" else "-"
        ax.plot(x, y * 100, ls=ls, lw=1.4,
                label=f"{m['name']} [{m['runtime']}]: NME {a['nme']:.2f} %, AUC {auc(e, threshold):.3f}")
    ax.set_xlim(0, threshold)
    ax.set_ylim(0, 100)
    ax.set_xlabel(f"NME % ({settings['dataset']})")
    ax.set_ylabel("faces with NME ≤ x (%)")
    ax.set_title(f"Cumulative error distribution, best {len(rows)} by NME", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def write_report(data: dict[str, Any], out_dir: str | Path) -> dict[str, Path | None]:
    """report.md, latency_vs_nme.png and ced.png in ``out_dir`` from a results dict."""
    out = Path(out_dir)
    data = dict(data)
    data["comparisons"] = peer_comparisons(data)
    paths = {"latency_vs_nme": plot_latency_vs_nme(data, out / "latency_vs_nme.png"),
             "ced": plot_ced(data, out / "ced.png")}
    (out / "report.md").write_text(markdown_report(data))
    paths["report"] = out / "report.md"
    return paths
