"""A Viola-Jones (Haar cascade) face detector in plain numpy + cv2.resize.

Why it exists: OpenCV 5 dropped ``cv2.CascadeClassifier`` and the cascade files from
its wheels, yet a landmark SDK needs *some* face detector that works offline with
nothing but its runtime dependencies. This module evaluates OpenCV's own cascade
XML files (stump or small-tree boosted stages of upright Haar features) and follows
OpenCV 4's ``detectMultiScale`` procedure closely, so a cascade behaves the same on
either OpenCV major version:

* image pyramid: scales 1, f, f², … (window ``round(24·s)``), the gray image resized by
  ``1/s`` with ``INTER_LINEAR_EXACT``; windows every 2 px below scale 2, every px above;
* per window, variance normalisation over the inner (w-2)×(h-2) rectangle; windows whose
  grey-level standard deviation is at most 10 are rejected (OpenCV does the same);
* a window rejected by the very first stage makes the scan skip the next position on
  its row (OpenCV's row-skip heuristic, emulated exactly);
* ``group_rectangles``: OpenCV's union-find clustering of similar rectangles (eps 0.2),
  rounding to integer rectangles, the ``> min_neighbors`` rule and the removal of
  small clusters inside bigger ones.

Tilted (45°) features and LBP cascades are not supported: the frontal-face Haar
cascades use neither; loading such a file raises :class:`CascadeFormatError`.
"""
from __future__ import annotations

import gzip
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .errors import ModelLoadError

THRESHOLD_EPS = 1e-5  # OpenCV lowers every stage threshold by this when it loads a cascade


class CascadeFormatError(ModelLoadError):
    """The cascade file is not an OpenCV Haar cascade this evaluator understands."""


@dataclass(frozen=True)
class _Stage:
    threshold: float
    node_feature: np.ndarray   # (M,) feature index of each node
    node_threshold: np.ndarray  # (M,) float32
    node_left: np.ndarray       # (M,) child: > 0 node (relative to its tree), <= 0 leaf -index
    node_right: np.ndarray
    tree_root: np.ndarray       # (T,) index of each tree's first node in the stage's node arrays
    tree_leaf0: np.ndarray      # (T,) index of each tree's first leaf in ``leaves``
    leaves: np.ndarray          # float32
    max_depth: int
    rect_xywh: np.ndarray       # (R, 4) every weighted rectangle of the stage's node features
    rect_weight: np.ndarray     # (R,) float32 weight of each rectangle
    node_start: np.ndarray      # (M,) first rectangle of each node (rectangles are grouped by node)


@dataclass(frozen=True)
class HaarCascade:
    """A parsed cascade: window size, stages and features (rects (K, 3, 4) x, y, w, h; weights (K, 3))."""

    width: int
    height: int
    stages: tuple[_Stage, ...]
    rects: np.ndarray
    weights: np.ndarray
    source: str

    @classmethod
    def load(cls, path: str | Path) -> "HaarCascade":
        """Parse an OpenCV cascade XML file (``.xml`` or gzip-compressed ``.xml.gz``)."""
        path = Path(path)
        if not path.is_file():
            raise ModelLoadError(f"face cascade file not found: {path}")
        try:
            raw = path.read_bytes()
            if raw[:2] == b"\x1f\x8b":
                raw = gzip.decompress(raw)
            root = ET.fromstring(raw)
        except (OSError, EOFError, ET.ParseError) as exc:
            raise CascadeFormatError(f"cannot read cascade {path}: {exc}") from None
        return cls._parse(root, str(path))

    @classmethod
    def _parse(cls, root: ET.Element, source: str) -> "HaarCascade":
        casc = root.find("cascade")
        if casc is None:
            raise CascadeFormatError(f"{source} is not a new-style OpenCV cascade (no <cascade> element)")

        def text(node: ET.Element | None, tag: str) -> str:
            child = node.find(tag) if node is not None else None
            if child is None or child.text is None:
                raise CascadeFormatError(f"{source}: missing <{tag}>")
            return child.text.strip()

        if text(casc, "stageType") != "BOOST":
            raise CascadeFormatError(f"{source}: only BOOST cascades are supported")
        if text(casc, "featureType") != "HAAR":
            raise CascadeFormatError(f"{source}: only HAAR features are supported (got {text(casc, 'featureType')})")
        width, height = int(text(casc, "width")), int(text(casc, "height"))
        feats = casc.find("features")
        if feats is None:
            raise CascadeFormatError(f"{source}: missing <features>")
        feat_nodes = list(feats)
        rects = np.zeros((len(feat_nodes), 3, 4), dtype=np.int64)
        weights = np.zeros((len(feat_nodes), 3), dtype=np.float32)
        for k, f in enumerate(feat_nodes):
            tilted = f.find("tilted")
            if tilted is not None and tilted.text is not None and int(tilted.text) != 0:
                raise CascadeFormatError(f"{source}: tilted Haar features are not supported")
            rr = f.find("rects")
            if rr is None or not 2 <= len(rr) <= 3:
                raise CascadeFormatError(f"{source}: feature {k} needs 2 or 3 rectangles")
            for j, r in enumerate(rr):
                vals = (r.text or "").split()
                if len(vals) != 5:
                    raise CascadeFormatError(f"{source}: feature {k} has a malformed rectangle {r.text!r}")
                rects[k, j] = [int(float(v)) for v in vals[:4]]
                weights[k, j] = float(vals[4])
        stages = []
        stages_node = casc.find("stages")
        if stages_node is None or len(stages_node) == 0:
            raise CascadeFormatError(f"{source}: no stages")
        for s in stages_node:
            nf, nt, nl, nr, roots, leaf0, leaves = [], [], [], [], [], [], []
            depth = 1
            weak = s.find("weakClassifiers")
            if weak is None:
                raise CascadeFormatError(f"{source}: stage without weak classifiers")
            for wc in weak:
                nodes = text(wc, "internalNodes").split()
                leaf_vals = [float(v) for v in text(wc, "leafValues").split()]
                if len(nodes) % 4:
                    raise CascadeFormatError(f"{source}: internalNodes must come in groups of 4 (categorical "
                                             "splits are not supported)")
                roots.append(len(nf))
                leaf0.append(len(leaves))
                n_nodes = len(nodes) // 4
                depth = max(depth, n_nodes)
                for i in range(n_nodes):
                    left, right, feat = (int(nodes[4 * i + j]) for j in range(3))
                    if not 0 <= feat < len(feat_nodes):
                        raise CascadeFormatError(f"{source}: feature index {feat} out of range")
                    nl.append(left)
                    nr.append(right)
                    nf.append(feat)
                    nt.append(float(nodes[4 * i + 3]))
                if len(leaf_vals) != n_nodes + 1:
                    raise CascadeFormatError(f"{source}: a tree with {n_nodes} nodes needs {n_nodes + 1} leaves")
                leaves.extend(leaf_vals)
            node_feature = np.array(nf, np.int64)
            used = [(m, j) for m, f in enumerate(node_feature) for j in range(3) if weights[f, j] != 0]
            rect_xywh = np.array([rects[node_feature[m], j] for m, j in used], np.int64).reshape(-1, 4)
            rect_weight = np.array([weights[node_feature[m], j] for m, j in used], np.float32)
            node_start = np.searchsorted(np.array([m for m, _ in used]), np.arange(len(node_feature)))
            stages.append(_Stage(float(text(s, "stageThreshold")) - THRESHOLD_EPS, node_feature,
                                 np.array(nt, np.float32), np.array(nl, np.int64), np.array(nr, np.int64),
                                 np.array(roots, np.int64), np.array(leaf0, np.int64), np.array(leaves, np.float32),
                                 depth, rect_xywh, rect_weight, node_start))
        return cls(width, height, tuple(stages), rects, weights, source)

    # --- evaluation --------------------------------------------------------------------------
    def _values_gather(self, stage: _Stage, ii: np.ndarray, stride: int, base: np.ndarray,
                       inv_norm: np.ndarray) -> np.ndarray:
        """Normalised feature value of each node (N, M) for windows with top-left flat index ``base``."""
        x, y, w, h = stage.rect_xywh.T                               # the stage's weighted rectangles (R,)
        tl = y * stride + x
        corners = np.stack([tl + h * stride + w, tl + w, tl + h * stride, tl], axis=1).reshape(-1)  # (R*4,)
        g = ii[base[:, None] + corners].reshape(len(base), -1, 4)
        sums = g[..., 0] - g[..., 1] - g[..., 2] + g[..., 3]          # (N, R) exact (int32 wraps cancel)
        vals = np.add.reduceat(sums.astype(np.float32) * stage.rect_weight, stage.node_start, axis=1)
        return vals * inv_norm[:, None]

    def _values_dense(self, stage: _Stage, ii: np.ndarray, ny: int, nx: int, step: int,
                      inv_norm: np.ndarray) -> np.ndarray:
        """Same as ``_values_gather`` for every window of the scan grid, with strided slices (much faster)."""
        ey, ex = step * (ny - 1) + 1, step * (nx - 1) + 1
        sums = np.empty((len(stage.rect_xywh), ny, nx), np.float32)
        for r, (x, y, w, h) in enumerate(stage.rect_xywh):
            sums[r] = (ii[y + h:y + h + ey:step, x + w:x + w + ex:step] - ii[y:y + ey:step, x + w:x + w + ex:step]
                       - ii[y + h:y + h + ey:step, x:x + ex:step] + ii[y:y + ey:step, x:x + ex:step])
        sums = sums.reshape(len(sums), -1) * stage.rect_weight[:, None]
        return (np.add.reduceat(sums, stage.node_start, axis=0) * inv_norm).T

    @staticmethod
    def _stage_score(stage: _Stage, vals: np.ndarray) -> np.ndarray:
        """Sum of the stage's tree leaves for node values ``vals`` (N, M)."""
        if stage.max_depth == 1:  # stumps: score = Σ right leaves + Σ_(val < thr) (left − right), one mat-vec
            left = stage.leaves[stage.tree_leaf0 - stage.node_left].astype(np.float64)
            right = stage.leaves[stage.tree_leaf0 - stage.node_right].astype(np.float64)
            return (vals < stage.node_threshold).astype(np.float64) @ (left - right) + right.sum()
        cur = np.zeros((len(vals), len(stage.tree_root)), dtype=np.int64)   # node index inside each tree
        leaf = np.zeros_like(cur)
        done = np.zeros(cur.shape, dtype=bool)
        for _ in range(stage.max_depth):
            node = stage.tree_root[None, :] + cur
            go = np.where(np.take_along_axis(vals, node, axis=1) < stage.node_threshold[node],
                          stage.node_left[node], stage.node_right[node])
            finished = (go <= 0) & ~done
            leaf[finished] = -go[finished]
            done |= finished
            cur = np.where(go > 0, go, cur)
            if done.all():
                break
        return stage.leaves[stage.tree_leaf0[None, :] + leaf].astype(np.float64).sum(axis=1)

    def detect_raw(self, gray: np.ndarray, scale_factor: float = 1.1, min_size: int = 0,
                   max_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Every window that passes all stages: (R, 4) int ``[x, y, w, h]`` and the scale index of each."""
        if gray.dtype != np.uint8 or gray.ndim != 2:
            raise ValueError(f"gray must be a 2-D uint8 image, got {gray.dtype} {gray.shape}")
        if scale_factor <= 1.0:
            raise ValueError(f"scale_factor must be > 1, got {scale_factor}")
        ih, iw = gray.shape
        limit = max_size if max_size is not None else max(iw, ih)
        out, levels = [], []
        factor, level = 1.0, 0
        while True:
            win_w, win_h = int(round(self.width * factor)), int(round(self.height * factor))
            if win_w > min(limit, iw) or win_h > min(limit, ih):
                break
            if win_w >= min_size and win_h >= min_size:
                found = self._scan_scale(gray, factor)
                if len(found):
                    out.append(found)
                    levels.append(np.full(len(found), level))
            factor *= scale_factor
            level += 1
        if not out:
            return np.zeros((0, 4), np.int64), np.zeros(0, np.int64)
        return np.concatenate(out), np.concatenate(levels)

    def _scan_scale(self, gray: np.ndarray, factor: float) -> np.ndarray:
        ih, iw = gray.shape
        sw, sh = int(round(iw / factor)), int(round(ih / factor))
        if sw < self.width or sh < self.height:
            return np.zeros((0, 4), np.int64)
        img = gray if (sw, sh) == (iw, ih) else cv2.resize(gray, (sw, sh), interpolation=cv2.INTER_LINEAR_EXACT)
        g = img.astype(np.int64)
        # int32 integral image: sums wrap modulo 2**32, but window sums (< 2**31) come out exact, as in OpenCV
        ii = np.zeros((sh + 1, sw + 1), np.int32)
        ii[1:, 1:] = g.cumsum(0).cumsum(1).astype(np.int32)
        sq = np.zeros((sh + 1, sw + 1), np.int64)
        sq[1:, 1:] = (g * g).cumsum(0).cumsum(1)
        stride = sw + 1
        step = 1 if factor >= 2 else 2
        ys = np.arange(0, sh - self.height + 1, step)
        xs = np.arange(0, sw - self.width + 1, step)
        ny, nx = len(ys), len(xs)
        if ny == 0 or nx == 0:
            return np.zeros((0, 4), np.int64)
        base = (ys[:, None] * stride + xs[None, :]).reshape(-1)
        # variance normalisation over the inner rectangle (1, 1, w-2, h-2)
        nw, nh = self.width - 2, self.height - 2
        ey, ex = step * (ny - 1) + 1, step * (nx - 1) + 1

        def inner(a: np.ndarray) -> np.ndarray:
            return (a[1 + nh:1 + nh + ey:step, 1 + nw:1 + nw + ex:step] - a[1:1 + ey:step, 1 + nw:1 + nw + ex:step]
                    - a[1 + nh:1 + nh + ey:step, 1:1 + ex:step] + a[1:1 + ey:step, 1:1 + ex:step]).reshape(-1)

        s, q = inner(ii).astype(np.int64), inner(sq)
        area = float(nw * nh)
        nf = area * q.astype(np.float64) - s.astype(np.float64) ** 2
        valid = nf > 0
        inv = np.where(valid, 1.0 / np.sqrt(np.where(valid, nf, 1.0)), 1.0).astype(np.float32)
        valid &= area * inv < 0.1
        stage0 = self.stages[0]
        first = self._stage_score(stage0, self._values_dense(stage0, ii, ny, nx, step, inv)) >= stage0.threshold
        # OpenCV's row scan: a valid window rejected by stage 0 makes it skip the next position.
        rejected0 = (valid & ~first).reshape(ny, nx)
        visited = np.ones_like(rejected0)
        for j in range(1, nx):
            visited[:, j] = ~(visited[:, j - 1] & rejected0[:, j - 1])
        alive_mask = valid & first & visited.reshape(-1)
        iif = ii.reshape(-1)
        alive = None
        for stage in self.stages[1:]:
            if alive is None and alive_mask.mean() > 0.35:  # many windows left: dense slices beat gathers
                alive_mask &= self._stage_score(stage, self._values_dense(stage, ii, ny, nx, step, inv)) >= stage.threshold
                continue
            if alive is None:
                alive = np.flatnonzero(alive_mask)
            if not len(alive):
                break
            vals = self._values_gather(stage, iif, stride, base[alive], inv[alive])
            alive = alive[self._stage_score(stage, vals) >= stage.threshold]
        if alive is None:
            alive = np.flatnonzero(alive_mask)
        if not len(alive):
            return np.zeros((0, 4), np.int64)
        yy, xx = ys[alive // nx], xs[alive % nx]
        w, h = int(round(self.width * factor)), int(round(self.height * factor))
        x0 = np.rint(xx * factor).astype(np.int64)  # cvRound: round half to even
        y0 = np.rint(yy * factor).astype(np.int64)
        return np.stack([x0, y0, np.full_like(x0, w), np.full_like(x0, h)], axis=1)


def group_rectangles(rects: np.ndarray, min_neighbors: int, eps: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV's ``groupRectangles``: cluster similar ``[x, y, w, h]`` rects, keep clusters of more than
    ``min_neighbors``, drop small clusters inside bigger ones. Returns (rects (G, 4) int, counts (G,))."""
    rects = np.asarray(rects, dtype=np.int64).reshape(-1, 4)
    if len(rects) == 0:
        return np.zeros((0, 4), np.int64), np.zeros(0, np.int64)
    if min_neighbors <= 0:
        return rects.copy(), np.ones(len(rects), np.int64)
    x, y, w, h = rects.T
    delta = eps * (np.minimum(w[:, None], w[None, :]) + np.minimum(h[:, None], h[None, :])) * 0.5
    similar = ((np.abs(x[:, None] - x[None, :]) <= delta) & (np.abs(y[:, None] - y[None, :]) <= delta)
               & (np.abs((x + w)[:, None] - (x + w)[None, :]) <= delta)
               & (np.abs((y + h)[:, None] - (y + h)[None, :]) <= delta))
    parent = np.arange(len(rects))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in zip(*np.nonzero(np.triu(similar, 1))):
        ri, rj = find(int(i)), find(int(j))
        if ri != rj:
            parent[rj] = ri
    labels = np.array([find(i) for i in range(len(rects))])
    _, labels = np.unique(labels, return_inverse=True)
    n_cls = labels.max() + 1
    counts = np.bincount(labels, minlength=n_cls)
    sums = np.zeros((n_cls, 4), np.float64)
    np.add.at(sums, labels, rects.astype(np.float64))
    mean = np.rint((sums * (np.float32(1.0) / counts[:, None].astype(np.float32))).astype(np.float32)).astype(np.int64)
    keep_r, keep_n = [], []
    for i in range(n_cls):
        n1 = counts[i]
        if n1 <= min_neighbors:
            continue
        r1 = mean[i]
        inside = False
        for j in range(n_cls):
            n2 = counts[j]
            if j == i or n2 <= min_neighbors:
                continue
            r2 = mean[j]
            dx, dy = int(round(r2[2] * eps)), int(round(r2[3] * eps))
            if (r1[0] >= r2[0] - dx and r1[1] >= r2[1] - dy and r1[0] + r1[2] <= r2[0] + r2[2] + dx
                    and r1[1] + r1[3] <= r2[1] + r2[3] + dy and (n2 > max(3, n1) or n1 < 3)):
                inside = True
                break
        if not inside:
            keep_r.append(r1)
            keep_n.append(n1)
    if not keep_r:
        return np.zeros((0, 4), np.int64), np.zeros(0, np.int64)
    return np.array(keep_r, np.int64), np.array(keep_n, np.int64)
