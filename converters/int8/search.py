"""INT8 under an accuracy budget: quantize, measure on held-out faces, keep more in float until it fits.

The search walks a ladder from the most quantized recipe to progressively larger float
tails (``scope``): level 0 (everything INT8), 1 (output layer), 2 (head), 3, 5, 8 … and
after each tail level the same tail with the network's first ``HEAD_LEVEL`` compute levels
in float too (the stem: where H3R-256's INT8 loss was measured to come from). Each attempt is written, run on the calibration source's validation split and compared
with the FP32 model; the relative NME increase it predicts (see ``validate``) is compared
with ``max_nme_increase``. The first attempt within the budget is kept — the fastest recipe that is accurate enough. When none
fits, :class:`Int8BudgetError` lists every attempt with its measured increase. Without
a budget the first rung is kept (still measured and recorded).

The chosen recipe, the calibration set's description and the validation numbers are
written into the model's metadata (``provenance.extra``: ``int8_recipe``,
``calibration``, ``validation``, ``int8_attempts``), so a file says how it was made
and what it was measured to cost.
"""
from __future__ import annotations

import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from calibration.sets import CalibrationSet, build_calibration_set
from sdk.backends import open_backend
from sdk.metadata import ModelMetadata

from ..source import ConversionError, ensure_onnx, with_precision
from .recipe import Int8Recipe, default_recipe, naive_recipe
from .validate import Validation, compare_on_validation, landmarks_on

log = logging.getLogger(__name__)

LADDER = (0, 1, 2, 3, 5, 8, 13, 21)
HEAD_LEVEL = 2  # float-head rung: the first convolution and the first depthwise convolution
INT8_RECIPES = ("auto", "naive")  # budget-driven ladder search, or the naive baseline
INT8_IO = ("float", "int8")


@dataclass(frozen=True)
class Int8Options:
    """What ``edgemark convert --int8`` was asked for.

    ``max_nme_increase``: budget as the relative increase of NME against ground truth in %
    (0.5 = INT8 NME ≤ FP32 NME × 1.005), predicted on the validation split (``validate``);
    None = no budget. ``reference_nme``: the FP32 NME the budget is relative to, when the
    calibration faces carry no labels in (or mappable to) the model's scheme.
    ``recipe``: "auto" (ladder search) or "naive" (min-max, everything INT8, outputs too).
    """

    calib: Any = "aflw-faces"
    calib_size: int = 200
    val_size: int = 400  # the budget's estimate needs a few hundred faces to settle (validate.py)
    seed: int = 0
    max_nme_increase: float | None = None
    reference_nme: float | None = None
    io: str = "float"
    recipe: str = "auto"
    levels: tuple[int, ...] | None = None  # ladder override (float levels, tried in order)
    calibration_method: str | None = None  # override the runtime's default range estimator
    cache_dir: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if self.recipe not in INT8_RECIPES:
            raise ValueError(f"INT8 recipe must be one of {INT8_RECIPES}, got {self.recipe!r}")
        if self.io not in INT8_IO:
            raise ValueError(f"INT8 I/O must be one of {INT8_IO}, got {self.io!r}")
        if self.max_nme_increase is not None and not self.max_nme_increase >= 0:
            raise ValueError(f"max_nme_increase must be >= 0 (relative NME increase in %), got {self.max_nme_increase}")
        if self.reference_nme is not None and not self.reference_nme > 0:
            raise ValueError(f"reference_nme must be a positive NME in %, got {self.reference_nme}")


@dataclass
class Attempt:
    recipe: Int8Recipe
    scope: str = ""
    validation: Validation | None = None
    error: str | None = None
    seconds: float = 0.0
    details: dict = field(default_factory=dict)

    @property
    def increase(self) -> float:
        """Predicted relative NME increase, %."""
        return float("inf") if self.validation is None else self.validation.predicted_increase

    def fits(self, budget: float | None) -> bool:
        return self.error is None and (budget is None or self.increase <= budget)

    def row(self) -> dict[str, Any]:
        row = {"recipe": self.recipe.name, "float_level": self.recipe.float_level, "scope": self.scope,
               "seconds": round(self.seconds, 1)}
        if self.validation is not None:
            row["nme_vs_fp32"] = round(self.validation.nme_vs_fp32, 4)
            if self.validation.fp32_nme is not None:
                row["predicted_increase_pct"] = round(self.validation.predicted_increase, 4)
        if self.error:
            row["error"] = self.error
        return row


class Int8BudgetError(ConversionError):
    """No INT8 recipe kept the landmarks within the accuracy budget; ``attempts`` says what each cost."""

    def __init__(self, fmt: str, budget: float, attempts: list[Attempt], cs: CalibrationSet):
        self.format, self.budget, self.attempts = fmt, budget, attempts
        lines = [f"no INT8 {fmt} recipe fits the budget of +{budget:g} % NME (relative, predicted from the "
                 f"displacement against FP32 on {len(cs.validation)} held-out faces of {cs.info.get('source')!r}, "
                 f"seed {cs.info.get('seed')}); attempts, most quantized first (d = INT8-vs-FP32 NME):"]
        for a in attempts:
            measured = (f"+{a.increase:.3f} % (d {a.validation.nme_vs_fp32:.4f})" if a.validation is not None
                        else f"failed: {a.error}")
            lines.append(f"  {a.recipe.name:<40} {a.scope:<60} {measured}")
        lines.append("Loosen --max-nme-increase, calibrate on faces closer to your data, or keep FP32/FP16.")
        super().__init__("\n".join(lines))


@dataclass
class Int8Result:
    path: Path
    recipe: Int8Recipe
    validation: Validation
    attempts: list[Attempt]
    meta: ModelMetadata


def ladder(options: Int8Options, runtime: str, max_level: int) -> list[Int8Recipe]:
    """The recipes to try, in order: most quantized (fastest) first."""
    if options.recipe == "naive":
        return [naive_recipe(runtime, io=options.io)]
    levels = options.levels if options.levels is not None else tuple(lv for lv in LADDER if lv < max(max_level, 1))
    heads = (0,) if options.levels is not None else (0, HEAD_LEVEL)  # an explicit ladder is tried as given
    recipes = []
    for lv in levels:
        for head in heads:
            r = default_recipe(runtime, float_level=lv, io=options.io, float_head=head)
            if options.calibration_method:
                r = r.with_(calibration=options.calibration_method)
            recipes.append(r)
    return recipes


def quantize_with_budget(source: Any, writer: Any, target: str | Path, options: Int8Options,
                         *, progress: Callable[[str], None] | None = None) -> Int8Result:
    """Write ``target`` as the most quantized recipe within ``options.max_nme_increase`` (see module doc).

    ``writer``: the format's writer (``converters.formats.FormatWriter``), which supplies the
    INT8 quantizer and restamps the chosen file.
    """
    fmt, files = writer.name, writer.format.paths
    if "int8" not in writer.precisions:
        raise ConversionError(f"{fmt} has no INT8 writer")
    if options.io == "int8" and not writer.int8_io:
        raise ConversionError(f"int8 I/O is a TFLite option; {fmt} INT8 models keep float inputs and outputs")
    runtime = writer.format.runtime
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fp32 = ensure_onnx(source)
    cs = build_calibration_set(source.meta, options.calib, size=options.calib_size, val_size=options.val_size,
                               seed=options.seed, cache_dir=options.cache_dir, progress=options.progress)
    reference = landmarks_on(open_backend(fp32, "onnxruntime", metadata=source.meta), cs)
    base = with_precision(source.meta, "int8")
    attempts: list[Attempt] = []
    work = Path(tempfile.mkdtemp(prefix=".int8-", dir=target.parent))
    try:
        quantizer = writer.int8_quantizer(source, fp32, cs.calibration, base, work)
        recipes = ladder(options, runtime, quantizer.max_level())
        chosen: tuple[Attempt, Path, ModelMetadata] | None = None
        for k, recipe in enumerate(recipes):
            if progress:
                progress(f"{fmt} int8 {recipe.name}")
            attempt = Attempt(recipe)
            start = time.perf_counter()
            path = work / f"attempt{k}{target.suffix}"
            try:
                path, details, meta = quantizer.quantize(recipe, path)
                attempt.scope, attempt.details = details.get("scope", ""), details
                cand = landmarks_on(open_backend(path), cs)
                attempt.validation = compare_on_validation(reference, cand, cs, source.meta.scheme.name,
                                                           options.reference_nme)
                if options.max_nme_increase is not None and attempt.validation.fp32_nme is None:
                    raise ConversionError(
                        f"--max-nme-increase is relative to the FP32 model's NME, but the calibration faces "
                        f"({cs.info.get('source')!r}) have no labels in or mappable to scheme "
                        f"{source.meta.scheme.name!r}: give --reference-nme (the FP32 NME in %) or labelled faces")
            except ConversionError:
                raise
            except Exception as exc:  # a recipe the toolchain cannot build is an attempt that failed, not a crash
                log.warning("INT8 %s recipe %s failed: %s", fmt, recipe.name, exc)
                attempt.error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
            attempt.seconds = time.perf_counter() - start
            attempts.append(attempt)
            log.info("INT8 %s %s: %s", fmt, recipe.name, attempt.row())
            if attempt.fits(options.max_nme_increase):
                chosen = (attempt, path, meta)
                break
        if chosen is None:
            if all(a.error for a in attempts):
                raise ConversionError(f"every INT8 {fmt} attempt failed: " + "; ".join(str(a.error) for a in attempts))
            raise Int8BudgetError(fmt, float(options.max_nme_increase), attempts, cs)
        attempt, path, meta = chosen
        final = with_precision(meta, "int8", int8_recipe={**attempt.recipe.to_dict(), "name": attempt.recipe.name,
                                                          **attempt.details},
                               calibration=cs.summary(),
                               validation={**attempt.validation.to_dict(),
                                           "metric": "relative GT-NME increase %, predicted sqrt(1 + (d/N)^2) - 1",
                                           "budget": options.max_nme_increase},
                               int8_attempts=[a.row() for a in attempts])
        writer.restamp(path, final)
        for src, dst in reversed(list(zip(files(path), files(target)))):  # data file first, descriptor last
            src.replace(dst)
        return Int8Result(target, attempt.recipe, attempt.validation, attempts, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def int8_tag(options: Int8Options) -> str:
    """File-name tag: ``int8``, ``int8_naive``, ``int8_int8io`` …"""
    return "int8" + ("_naive" if options.recipe == "naive" else "") + ("_int8io" if options.io == "int8" else "")
