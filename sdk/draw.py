"""Drawing landmarks for people to look at (predict --out)."""
from __future__ import annotations

import cv2
import numpy as np


def draw_landmarks(image: np.ndarray, prediction, color=(0, 255, 0), box_color=(255, 160, 0)) -> np.ndarray:
    """A copy of ``image`` with each face's box and points; point radius scales with the face."""
    out = image.copy()
    for box, points in zip(prediction.boxes, prediction.landmarks):
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        size = max(x2 - x1, y2 - y1, 1)
        thick = max(1, size // 150)
        cv2.rectangle(out, (x1, y1), (x2, y2), box_color, thick, cv2.LINE_AA)
        radius = max(1, size // 100)
        for x, y in points:
            if np.isfinite(x) and np.isfinite(y):
                cv2.circle(out, (int(round(x)), int(round(y))), radius, color, -1, cv2.LINE_AA)
    return out
