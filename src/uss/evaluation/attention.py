"""How well an attention map separates objects from background, independent of any threshold."""
from typing import Callable, Dict

import numpy as np
from sklearn.metrics import roc_auc_score

from uss.data.label_png import IGNORE
from uss.data.split import ImageNetSSplit

__all__ = ["foreground_auc"]


def foreground_auc(attention_of: Callable[[np.ndarray], np.ndarray], split: ImageNetSSplit) -> Dict[str, float]:
    """ROC AUC of the attention as a foreground score over every labelled pixel of a split with ground truth
    (ignore pixels dropped; 0.5 = no information, below 0.5 = inverted), with the attention's range, its mean
    within-image spread and its means on objects and on background. `attention_of(image)` -> H x W."""
    foreground, scores, spreads = [], [], []
    for index in range(len(split)):
        truth = split.load_label(index)
        attention = np.asarray(attention_of(split.load(index).image), np.float32)
        keep = truth != IGNORE
        foreground.append(truth[keep] > 0)
        scores.append(attention[keep])
        spreads.append(float(attention.std()))
    fg, values = np.concatenate(foreground), np.concatenate(scores)
    both = fg.any() and (~fg).any()
    return {"auc": float(roc_auc_score(fg, values)) if both else float("nan"), "min": float(values.min()),
            "max": float(values.max()), "within_image_std": float(np.mean(spreads)),
            "mean_foreground": float(values[fg].mean()) if fg.any() else float("nan"),
            "mean_background": float(values[~fg].mean()) if (~fg).any() else float("nan")}
