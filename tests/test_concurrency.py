"""One Predictor shared by 8 threads gives exactly the serial results; backends not known to be
thread-safe are serialised by the Predictor's lock."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from sdk import Predictor
from sdk.backends import open_backend
from sdk.backends.base import Backend


def _jobs(n: int = 24):
    rng = np.random.default_rng(3)
    jobs = []
    for i in range(n):
        img = rng.integers(0, 255, size=(120 + i, 160, 3), dtype=np.uint8)
        x, y = rng.uniform(0, 40, 2)
        side = rng.uniform(40, 110)
        jobs.append((img, np.array([[x, y, x + side, y + side * 1.1]], np.float32), bool(i % 3 == 0)))
    return jobs


def test_eight_threads_match_serial(runtime_onnx):
    p = Predictor(runtime_onnx, threads=1)
    jobs = _jobs()
    serial = [p.predict(img, box, flip_test=flip) for img, box, flip in jobs]
    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in range(2):
            parallel = list(pool.map(lambda j: p.predict(j[0], j[1], flip_test=j[2]), jobs))
            for s, q in zip(serial, parallel):
                np.testing.assert_array_equal(s.landmarks, q.landmarks)
                np.testing.assert_array_equal(s.point_confidence, q.point_confidence)


def test_eight_threads_with_detection_match_serial(runtime_onnx, aflw2000):
    """The default detector (numpy cascade) is stateless too."""
    from sdk import PredictorOptions

    p = Predictor(runtime_onnx, options=PredictorOptions(threads=1, min_face_confidence=0.0))
    images = [aflw2000.load_image(i) for i in range(4)] * 2
    serial = [p.predict(img) for img in images]
    with ThreadPoolExecutor(max_workers=8) as pool:
        parallel = list(pool.map(p.predict, images))
    assert sum(len(s) for s in serial) >= 3
    for s, q in zip(serial, parallel):
        np.testing.assert_array_equal(s.boxes, q.boxes)
        np.testing.assert_array_equal(s.landmarks, q.landmarks)


class _CountingBackend(Backend):
    """Wraps a real ORT backend and records how many threads are inside run() at once —
    standing in for a runtime with one shared infer request (OpenVINO's, TFLite's interpreter)."""

    name = "counting"

    def __init__(self, inner: Backend):
        self.inner = inner
        self.path, self.threads, self.metadata = inner.path, inner.threads, inner.metadata
        self.inside = 0
        self.max_inside = 0
        self._count_lock = threading.Lock()

    def _load(self):  # pragma: no cover - never called: wraps an opened backend
        raise NotImplementedError

    def _read_metadata(self):  # pragma: no cover
        raise NotImplementedError

    def output_names(self):
        return self.inner.output_names()

    def run(self, tensor):
        with self._count_lock:
            self.inside += 1
            self.max_inside = max(self.max_inside, self.inside)
        try:
            threading.Event().wait(0.002)  # widen the window a race would need
            return self.inner.run(tensor)
        finally:
            with self._count_lock:
                self.inside -= 1


def test_unknown_backends_are_serialised(runtime_onnx):
    backend = _CountingBackend(open_backend(runtime_onnx, threads=1))
    p = Predictor(backend)
    jobs = _jobs(16)
    serial = [p.predict(img, box) for img, box, _ in jobs]
    with ThreadPoolExecutor(max_workers=8) as pool:
        parallel = list(pool.map(lambda j: p.predict(j[0], j[1]), jobs))
    assert backend.max_inside == 1
    for s, q in zip(serial, parallel):
        np.testing.assert_array_equal(s.landmarks, q.landmarks)


def test_backends_can_declare_themselves_thread_safe(runtime_onnx):
    backend = _CountingBackend(open_backend(runtime_onnx, threads=1))
    backend.thread_safe = True
    p = Predictor(backend)
    jobs = _jobs(16)
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda j: p.predict(j[0], j[1]), jobs))
    assert backend.max_inside > 1  # no lock: the calls really overlapped
