"""The optimiser of the training stages (their arguments: uss.options.optimisation): momentum SGD, or LARC."""
import argparse

import jittor as jt


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


def build_optimizer(parameters, args: argparse.Namespace) -> jt.optim.Optimizer:
    """SGD with args.momentum and weight decay args.wd, wrapped in LARC when args.larc > 0."""
    if args.larc > 0:
        return LARC(parameters, lr=args.base_lr, momentum=args.momentum, weight_decay=args.wd,
                    trust_coefficient=args.larc)
    return jt.optim.SGD(parameters, lr=args.base_lr, momentum=args.momentum, weight_decay=args.wd)


def set_lr(optimizer: jt.optim.Optimizer, lr: float) -> None:
    """Set every parameter group's learning rate (the loop does so each iteration from the schedule)."""
    for group in optimizer.param_groups:
        group["lr"] = float(lr)
