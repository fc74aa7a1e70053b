"""Photo collections: every input kind, every output format read back, bad files, resume after a kill,
parallel workers, and the Ray Data engine on a tiny set."""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from sdk import InputError
from sdk.batch import BatchOptions, expand_inputs, read_rows, run_batch
from sdk.batch.rows import COLUMNS, done_key
from sdk.batch.writers import csv_header, open_writer

pytest.importorskip("onnxruntime", reason="the batch tests run the bundled model on ONNX Runtime")

SAMPLE = Path(__file__).resolve().parent.parent / "sdk" / "data" / "sample.jpg"
OPTIONS = BatchOptions(workers=1, threads=1, progress=False)


@pytest.fixture()
def photos(tmp_path) -> Path:
    """4 photos with a face (one in a sub-folder), one without, a corrupt JPEG and a text file."""
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    image = cv2.imread(str(SAMPLE))
    shutil.copy(SAMPLE, root / "a.jpg")
    cv2.imwrite(str(root / "b.png"), image[:, ::-1])
    cv2.imwrite(str(root / "c.jpg"), cv2.resize(image, (400, 400)))
    shutil.copy(SAMPLE, root / "sub" / "d.jpg")
    cv2.imwrite(str(root / "wall.jpg"), np.full((200, 300, 3), 120, np.uint8))
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut short")
    (root / "readme.txt").write_text("not a photo")
    return root


def _key(row):
    return (Path(row["source"]).name, row["frame"], row["face"])


def test_input_kinds(photos, tmp_path):
    names = lambda found: sorted(Path(s.path).name for s in found)  # noqa: E731
    assert names(expand_inputs([photos])) == ["a.jpg", "b.png", "broken.jpg", "c.jpg", "wall.jpg"]
    assert names(expand_inputs([photos], recursive=True)) == ["a.jpg", "b.png", "broken.jpg", "c.jpg", "d.jpg",
                                                              "wall.jpg"]
    assert names(expand_inputs([str(photos / "*.jpg")])) == ["a.jpg", "broken.jpg", "c.jpg", "wall.jpg"]
    assert names(expand_inputs([str(photos / "**" / "d.jpg")])) == ["d.jpg"]
    listing = tmp_path / "list.txt"
    listing.write_text("# my photos\nphotos/a.jpg\n\nphotos/sub/d.jpg  # the second\nphotos/missing.jpg\n")
    found = expand_inputs([listing])
    assert names(found) == ["a.jpg", "d.jpg", "missing.jpg"] and found[-1].size == -1
    assert names(expand_inputs([photos / "a.jpg", photos / "a.jpg"])) == ["a.jpg"]  # duplicates once
    camera = expand_inputs(["0"])
    assert [(c.path, c.kind) for c in camera] == [("0", "camera")]
    with pytest.raises(InputError, match="matches no file"):
        expand_inputs([str(photos / "*.gif")])
    with pytest.raises(InputError, match="no such file, folder or pattern"):
        expand_inputs([tmp_path / "nowhere"])


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_every_output_format_reads_back_the_same_rows(photos, tmp_path, suffix):
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    out = tmp_path / f"rows{suffix}"
    summary = run_batch([photos], out, OPTIONS)
    assert (summary.files, summary.faces, summary.no_face, len(summary.errors)) == (5, 3, 1, 1)
    rows = sorted(read_rows(out), key=_key)
    assert [(Path(r["source"]).name, r["status"], r["face"]) for r in rows] == [
        ("a.jpg", "ok", 0), ("b.png", "ok", 0), ("broken.jpg", "error", -1), ("c.jpg", "ok", 0),
        ("wall.jpg", "no_face", -1)]
    ok = [r for r in rows if r["status"] == "ok"]
    for r in ok:
        assert set(r) == set(COLUMNS) and len(r["landmarks"]) == 2 * 98 and len(r["point_confidence"]) == 98
        assert r["model"].endswith(".onnx") and len(r["model_sha256"]) == 64 and r["scheme"] == "wflw98"
    a = next(r for r in ok if r["source"].endswith("a.jpg"))
    direct = __import__("sdk").Predictor(threads=1).predict(cv2.imread(str(SAMPLE)))
    np.testing.assert_allclose(np.reshape(a["landmarks"], (-1, 2)), direct.landmarks[0], atol=2e-3)
    assert "decode" in next(r for r in rows if r["status"] == "error")["error"]


def test_formats_agree(photos, tmp_path):
    pytest.importorskip("pyarrow")
    tables = {}
    for suffix in (".jsonl", ".csv", ".parquet"):
        run_batch([photos], tmp_path / f"rows{suffix}", OPTIONS)
        tables[suffix] = sorted(read_rows(tmp_path / f"rows{suffix}"), key=_key)
    for suffix in (".csv", ".parquet"):
        for a, b in zip(tables[".jsonl"], tables[suffix]):
            for col in COLUMNS:
                if isinstance(a[col], list):
                    np.testing.assert_allclose(a[col], b[col], atol=1e-3)
                elif isinstance(a[col], float):
                    assert a[col] == pytest.approx(b[col], abs=1e-4)
                else:
                    assert a[col] == b[col], (suffix, col)


def test_scheme_68_and_annotated_copies(photos, tmp_path):
    out = tmp_path / "rows.jsonl"
    run_batch([photos / "a.jpg"], out, BatchOptions(workers=1, threads=1, progress=False, scheme68=True,
                                                    annotate=str(tmp_path / "drawn")))
    (row,) = read_rows(out)
    assert row["scheme"] == "ibug68" and len(row["landmarks"]) == 136
    assert cv2.imread(str(tmp_path / "drawn" / "a.jpg")).shape == (512, 512, 3)


def test_a_named_non_image_and_a_missing_camera_are_rows_with_their_error(photos, tmp_path):
    out = tmp_path / "rows.jsonl"
    with pytest.raises(InputError, match="--max-frames"):
        run_batch(["7"], out, OPTIONS)
    notes = photos / "notes.md"
    notes.write_text("# not a photo")
    run_batch([notes, "7"], out, BatchOptions(workers=1, threads=1, progress=False, max_frames=3))
    rows = {r["source"]: r for r in read_rows(out)}
    assert rows[str(notes)]["status"] == "error" and "decode" in rows[str(notes)]["error"]
    assert rows["7"]["status"] == "error" and rows["7"]["error"] == "cannot open camera 7"


def test_rerun_skips_what_is_done_and_appends(photos, tmp_path):
    out = tmp_path / "rows.jsonl"
    first = run_batch([photos / "a.jpg", photos / "b.png"], out, OPTIONS)
    again = run_batch([photos], out, OPTIONS)
    assert first.files == 2 and again.skipped == 2 and again.files == 5
    rows = read_rows(out)
    assert len(rows) == 5 and len({_key(r) for r in rows}) == 5
    shutil.copy(photos / "c.jpg", photos / "a.jpg")  # a changed file is predicted again
    assert run_batch([photos], out, OPTIONS).skipped == 4


def test_output_errors(photos, tmp_path):
    with pytest.raises(InputError, match="unknown extension"):
        run_batch([photos], tmp_path / "rows.xlsx", OPTIONS)
    with pytest.raises(InputError, match="does not exist"):
        run_batch([photos], tmp_path / "nowhere" / "rows.jsonl", OPTIONS)
    csv_file = tmp_path / "other.csv"
    csv_file.write_text(",".join(csv_header(68)) + "\n")
    with pytest.raises(InputError, match="other columns"):
        run_batch([photos], csv_file, OPTIONS)
    jsonl = tmp_path / "other.jsonl"
    jsonl.write_text(json.dumps({"source": "x", "file_size": 1, "file_mtime_ns": 1, "frame": 0,
                                 "model_sha256": "f" * 64}) + "\n")
    with pytest.raises(InputError, match="another model"):
        run_batch([photos], jsonl, OPTIONS)


def test_a_row_cut_by_a_kill_is_repaired(tmp_path):
    out = tmp_path / "rows.jsonl"
    good = {"source": "a", "file_size": 1, "file_mtime_ns": 2, "frame": 0}
    out.write_text(json.dumps(good) + "\n" + '{"source": "b", "file_si')
    writer = open_writer(out, 98)
    assert writer.done == {done_key(good)} and out.read_text() == json.dumps(good) + "\n"


def test_workers_give_the_same_rows(photos, tmp_path):
    run_batch([photos], tmp_path / "one.jsonl", OPTIONS)
    run_batch([photos], tmp_path / "two.jsonl", BatchOptions(workers=2, threads=1, progress=False, chunk=2))
    one, two = (sorted(read_rows(tmp_path / f), key=_key) for f in ("one.jsonl", "two.jsonl"))
    assert [_key(r) for r in one] == [_key(r) for r in two]
    for a, b in zip(one, two):
        assert a["landmarks"] == b["landmarks"] and a["status"] == b["status"]


def test_a_video_gives_rows_per_frame(tmp_path):
    video = tmp_path / "clip.mp4"
    frame = cv2.resize(cv2.imread(str(SAMPLE)), (256, 256))
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (256, 256))
    if not writer.isOpened():
        pytest.skip("this OpenCV cannot write mp4v")
    for _ in range(4):
        writer.write(frame)
    writer.release()
    out = tmp_path / "rows.jsonl"
    summary = run_batch([video], out, OPTIONS)
    assert (summary.frames, summary.faces, summary.rows) == (4, 4, 4)
    rows = read_rows(out)
    assert [r["frame"] for r in rows] == [0, 1, 2, 3] and all(r["status"] == "ok" for r in rows)


def test_killed_halfway_then_rerun_has_no_duplicate_and_no_missing_row(tmp_path):
    """SIGKILL the CLI while it writes, rerun the same command: every photo exactly once."""
    folder = tmp_path / "many"
    folder.mkdir()
    image = cv2.imread(str(SAMPLE))
    for i in range(40):
        cv2.imwrite(str(folder / f"p{i:02d}.jpg"), np.roll(image, 3 * i, axis=1))
    out = tmp_path / "rows.jsonl"
    cmd = [sys.executable, "-m", "edgemark_cli", "predict", str(folder), "--out", str(out), "--workers", "1",
           "--threads", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and (not out.exists() or out.read_text().count("\n") < 8):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    written = out.read_text().count("\n")
    assert 8 <= written < 40, f"the kill came too late to test anything ({written} rows)"
    assert subprocess.run(cmd, capture_output=True).returncode == 0
    rows = read_rows(out)
    names = [Path(r["source"]).name for r in rows]
    assert sorted(names) == [f"p{i:02d}.jpg" for i in range(40)]  # none missing, none twice


def test_ray_engine_gives_the_rows_of_the_local_engine(photos, tmp_path):
    ray = pytest.importorskip("ray", reason="Ray comes with the ray extra (CI installs it)")
    pytest.importorskip("pyarrow")
    from sdk.batch.ray_engine import run_ray

    inputs = [str(photos.resolve())]
    run_batch(inputs, tmp_path / "local.jsonl", OPTIONS)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    try:
        counts = run_ray(inputs, tmp_path / "ray.parquet", BatchOptions(workers=1, progress=False), actors=2,
                         cpus_per_actor=0.5, batch_size=2)
        again = run_ray(inputs, tmp_path / "ray.parquet", BatchOptions(workers=1, progress=False), actors=1)
    finally:
        ray.shutdown()
    assert counts["rows"] == 5 and again["skipped"] == 5
    local = sorted(read_rows(tmp_path / "local.jsonl"), key=_key)
    remote = sorted(read_rows(tmp_path / "ray.parquet"), key=_key)
    assert [_key(r) for r in local] == [_key(r) for r in remote]
    for a, b in zip(local, remote):
        assert (a["status"], a["source"], a["file_size"], a["file_mtime_ns"]) == \
               (b["status"], b["source"], b["file_size"], b["file_mtime_ns"])
        if a["landmarks"] is not None:
            np.testing.assert_allclose(a["landmarks"], b["landmarks"], atol=1e-3)
