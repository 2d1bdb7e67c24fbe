"""The optimiser of the training stages (their arguments: uss.options.optimisation): momentum SGD, or LARC."""
from dataclasses import dataclass

import jittor as jt


@dataclass(frozen=True)
class Optimisation:
    """A training stage's optimiser and learning-rate schedule (defaults: PASS's main_pretrain.py).

    base_lr / final_lr: the schedule's ends after warmup_epochs of linear warm-up from start_warmup; schedule:
    'cosine' (PASS, SwAV) or 'poly' with exponent poly_power (mmsegmentation); momentum and weight_decay of SGD;
    larc: LARC's trust coefficient, 0 for plain momentum SGD.
    """
    base_lr: float = 0.6
    final_lr: float = 0.0006
    schedule: str = "cosine"
    poly_power: float = 0.9
    warmup_epochs: int = 0
    start_warmup: float = 0.0
    weight_decay: float = 1e-6
    momentum: float = 0.9
    larc: float = 0.0


class LARC(jt.optim.SGD):
    """Momentum SGD wrapped in LARC as SwAV / PASS's PyTorch code use it (apex.parallel.LARC, clip=False).

    Each parameter's gradient g (weights w) becomes (g + wd * w) * trust * |w| / (|g| + wd * |w| + eps) before
    the momentum step, so every layer moves by about lr * trust of its own norm per step whatever its gradient
    scale; a parameter whose weight or gradient norm is 0 (e.g. a zero-initialised bias) takes the plain
    gradient, without weight decay, as apex does. The state (momentum buffers) is SGD's, so checkpoints of
    either optimiser load into the other.
    """

    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
                 trust_coefficient: float = 0.001, eps: float = 1e-8):
        super().__init__(params, lr, momentum=momentum, weight_decay=weight_decay)
        self.trust_coefficient = trust_coefficient
        self.eps = eps

    def step(self, loss=None, retain_graph: bool = False) -> None:
        self.pre_step(loss, retain_graph=retain_graph)
        jt.flags.node_order = 1
        for group in self.param_groups:
            lr = group.get("lr", self.lr)
            momentum = group.get("momentum", self.momentum)
            weight_decay = group.get("weight_decay", self.weight_decay)
            for p, g, v in zip(group["params"], group["grads"], group["values"]):
                if p.is_stop_grad():
                    continue
                w_norm = p.sqr().sum().sqrt()
                g_norm = g.sqr().sum().sqrt()
                scaled = (g + p * weight_decay) * (
                    self.trust_coefficient * w_norm / (g_norm + w_norm * weight_decay + self.eps))
                dp = jt.ternary((w_norm > 0) & (g_norm > 0), scaled, g)
                v.update(momentum * v + dp)
                p.update(p - v * lr)
        self.post_step()


def build_optimizer(parameters, settings: Optimisation) -> jt.optim.Optimizer:
    """Momentum SGD at settings.base_lr, wrapped in LARC when settings.larc > 0."""
    if settings.larc > 0:
        return LARC(parameters, lr=settings.base_lr, momentum=settings.momentum, weight_decay=settings.weight_decay,
                    trust_coefficient=settings.larc)
    return jt.optim.SGD(parameters, lr=settings.base_lr, momentum=settings.momentum,
                        weight_decay=settings.weight_decay)


def set_lr(optimizer: jt.optim.Optimizer, lr: float) -> None:
    """Set every parameter group's learning rate (the loop does so each iteration from the schedule)."""
    for group in optimizer.param_groups:
        group["lr"] = float(lr)
