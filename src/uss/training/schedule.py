"""Learning-rate schedules."""
import numpy as np


def warmup_cosine(base_lr: float, final_lr: float, epochs: int, iters_per_epoch: int,
                  warmup_epochs: int = 0, start_warmup: float = 0.0) -> np.ndarray:
    """Per-iteration learning rates: linear warm-up from start_warmup, then cosine from base_lr to final_lr."""
    warmup = np.linspace(start_warmup, base_lr, iters_per_epoch * warmup_epochs, endpoint=False)
    steps = iters_per_epoch * (epochs - warmup_epochs)
    t = np.arange(steps)
    cosine = final_lr + 0.5 * (base_lr - final_lr) * (1 + np.cos(np.pi * t / max(1, steps)))
    return np.concatenate([warmup, cosine])
