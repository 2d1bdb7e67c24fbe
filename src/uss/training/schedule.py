"""Learning-rate schedules, per iteration: PASS / SwAV's warm-up + cosine, and mmsegmentation's poly."""
import numpy as np

from uss.training.optim import Optimisation

SCHEDULES = ("cosine", "poly")


def warmup_cosine(base_lr: float, final_lr: float, epochs: int, iters_per_epoch: int,
                  warmup_epochs: int = 0, start_warmup: float = 0.0) -> np.ndarray:
    """Per-iteration learning rates: linear warm-up from start_warmup, then cosine from base_lr to final_lr."""
    warmup = np.linspace(start_warmup, base_lr, iters_per_epoch * warmup_epochs, endpoint=False)
    steps = iters_per_epoch * (epochs - warmup_epochs)
    t = np.arange(steps)
    cosine = final_lr + 0.5 * (base_lr - final_lr) * (1 + np.cos(np.pi * t / max(1, steps)))
    return np.concatenate([warmup, cosine])


def warmup_poly(base_lr: float, final_lr: float, epochs: int, iters_per_epoch: int, power: float = 0.9,
                warmup_epochs: int = 0, start_warmup: float = 0.0) -> np.ndarray:
    """Per-iteration learning rates: linear warm-up, then mmsegmentation's PolyLrUpdaterHook (by_epoch=False):
    lr = (base_lr - final_lr) * (1 - t / T) ** power + final_lr over the T iterations after the warm-up."""
    warmup = np.linspace(start_warmup, base_lr, iters_per_epoch * warmup_epochs, endpoint=False)
    steps = iters_per_epoch * (epochs - warmup_epochs)
    t = np.arange(steps)
    poly = (base_lr - final_lr) * (1 - t / max(1, steps)) ** power + final_lr
    return np.concatenate([warmup, poly])


def build_schedule(settings: Optimisation, epochs: int, iters_per_epoch: int) -> np.ndarray:
    """The per-iteration learning rates of settings.schedule over `epochs` epochs."""
    if settings.schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {settings.schedule!r}; choose from {SCHEDULES}")
    if settings.schedule == "poly":
        return warmup_poly(settings.base_lr, settings.final_lr, epochs, iters_per_epoch, settings.poly_power,
                           settings.warmup_epochs, settings.start_warmup)
    return warmup_cosine(settings.base_lr, settings.final_lr, epochs, iters_per_epoch, settings.warmup_epochs,
                         settings.start_warmup)
