"""Human-readable tables (percent) and atomic JSON output (fractions) for evaluation results."""
import math
from typing import Any, Dict, List, Optional

from uss.atomic import atomic_write_json

SUMMARY_KEYS = ("mIoU", "Acc", "FMeasure", "mBIoU", "S", "MS", "ML", "L", "BS", "BMS", "BML", "BL")


def _percent(value: Optional[float]) -> str:
    """Fraction -> '12.34'; None / NaN -> 'n/a'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{100.0 * value:.2f}"


def _table(header: List[str], rows: List[List[str]], left: int = 1) -> str:
    """Plain fixed-width table with a header rule; the first `left` columns left-aligned, the rest right."""
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    line = lambda cells: "  ".join(str(c).ljust(w) if i < left else str(c).rjust(w)  # noqa: E731
                                   for i, (c, w) in enumerate(zip(cells, widths)))
    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule] + [line(r) for r in rows])


def format_table(result: Dict[str, Any], per_class: bool = True) -> str:
    """Summary (percent) plus, optionally, the per-class IoU / boundary IoU table."""
    parts = []
    if per_class and result.get("IoUs") is not None:
        classes = result.get("classes") or [str(i) for i in range(len(result["IoUs"]))]
        bious = result.get("BIoUs") or [None] * len(result["IoUs"])
        rows = [[str(i), name, _percent(iou), _percent(b)]
                for i, (name, iou, b) in enumerate(zip(classes, result["IoUs"], bious))]
        parts.append("per-class IoU (%):\n" + _table(["id", "class", "IoU", "BIoU"], rows, left=2))
    keys = [k for k in SUMMARY_KEYS if k in result]
    parts.append("summary (%):\n" + _table(keys, [[_percent(result[k]) for k in keys]], left=0))
    extra = []
    if "num_images" in result:
        extra.append(f"images: {result['num_images']}")
    if "num_classes" in result:
        extra.append(f"classes: {result['num_classes']} + background")
    if result.get("images_per_s") is not None:
        extra.append(f"speed: {result['images_per_s']:.1f} images/s")
    if extra:
        parts.append(", ".join(extra))
    return "\n\n".join(parts)


def to_jsonable(value: Any) -> Any:
    """Numpy scalars -> Python, NaN/inf -> None, dict keys -> str, recursively."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_result_json(path: str, result: Dict[str, Any]) -> None:
    """Write a result dict (fractions in [0, 1]) as JSON, atomically."""
    atomic_write_json(path, to_jsonable(result))
