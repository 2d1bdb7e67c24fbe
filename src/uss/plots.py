"""Small line and bar charts drawn with OpenCV (no plotting library needed), saved as PNG."""
from typing import Optional, Sequence

import cv2
import numpy as np

from uss.atomic import atomic_write_bytes


def _encode_png(canvas: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return data.tobytes()


def _put_title(canvas: np.ndarray, text: str, left: int, scale: float = 0.55) -> None:
    """Draw a title at the top, its font shrunk until it fits the canvas width (long sweep titles were cut off)."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    room = canvas.shape[1] - left - 6
    while scale > 0.3 and cv2.getTextSize(text, font, scale, 1)[0][0] > room:
        scale -= 0.025
    cv2.putText(canvas, text, (left, 24), font, scale, (0, 0, 0), 1, cv2.LINE_AA)


def line_chart(xs: Sequence[float], series: dict, title: str, xlabel: str, ylabel: str,
               mark_x: Optional[float] = None, size=(640, 420)) -> np.ndarray:
    """RGB image of one or more curves {name: ys} over xs, with an optional vertical marker."""
    width, height = size
    left, right, top, bottom = 60, 20, 40, 50
    canvas = np.full((height, width, 3), 255, np.uint8)
    xs = np.asarray(xs, dtype=np.float64)
    all_y = np.concatenate([np.asarray(v, dtype=np.float64) for v in series.values()])
    y_low, y_high = float(min(0.0, all_y.min())), float(max(all_y.max(), 1e-6)) * 1.05
    x_low, x_high = float(xs.min()), float(xs.max()) if xs.max() > xs.min() else float(xs.min()) + 1

    def to_pixel(x, y):
        px = left + (x - x_low) / (x_high - x_low) * (width - left - right)
        py = height - bottom - (y - y_low) / (y_high - y_low) * (height - top - bottom)
        return int(round(px)), int(round(py))

    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.rectangle(canvas, (left, top), (width - right, height - bottom), (0, 0, 0), 1)
    for frac in np.linspace(0, 1, 6):
        y = y_low + frac * (y_high - y_low)
        _, py = to_pixel(x_low, y)
        cv2.line(canvas, (left - 4, py), (left, py), (0, 0, 0), 1)
        cv2.putText(canvas, f"{y:.2f}", (4, py + 4), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        x = x_low + frac * (x_high - x_low)
        px, _ = to_pixel(x, y_low)
        cv2.line(canvas, (px, height - bottom), (px, height - bottom + 4), (0, 0, 0), 1)
        cv2.putText(canvas, f"{x:.2f}", (px - 14, height - bottom + 18), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    colors = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14)]
    for index, (name, ys) in enumerate(series.items()):
        color = colors[index % len(colors)]
        points = np.array([to_pixel(x, y) for x, y in zip(xs, ys)], np.int32)
        cv2.polylines(canvas, [points], False, color, 2, cv2.LINE_AA)
        cv2.putText(canvas, name, (left + 10, top + 18 + 16 * index), font, 0.45, color, 1, cv2.LINE_AA)
    if mark_x is not None:
        px, _ = to_pixel(mark_x, y_low)
        cv2.line(canvas, (px, top), (px, height - bottom), (120, 120, 120), 1, cv2.LINE_AA)
    _put_title(canvas, title, left)
    cv2.putText(canvas, xlabel, (width // 2 - 40, height - 12), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(canvas, ylabel, (4, top - 8), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return canvas


def save_png(path: str, canvas: np.ndarray) -> None:
    """Write an RGB uint8 image as PNG, atomically."""
    atomic_write_bytes(path, _encode_png(canvas))


def bar_chart(labels: Sequence[str], values: Sequence[float], title: str, size=(640, 420)) -> np.ndarray:
    """RGB image of horizontal bars (values in [0, 1]) with their labels and percentages."""
    width, height = size
    canvas = np.full((height, width, 3), 255, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    _put_title(canvas, title, 10)
    top, left, right = 40, 150, 60
    row = max(8, (height - top - 10) // max(1, len(values)))
    for index, (label, value) in enumerate(zip(labels, values)):
        y = top + index * row
        length = int(round(max(0.0, min(1.0, value or 0.0)) * (width - left - right)))
        cv2.rectangle(canvas, (left, y + 2), (left + length, y + row - 2), (31, 119, 180), -1)
        cv2.putText(canvas, str(label)[:20], (6, y + row - 4), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        text = "-" if value is None else f"{100 * value:.1f}"
        cv2.putText(canvas, text, (left + length + 4, y + row - 4), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return canvas
