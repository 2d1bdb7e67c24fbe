"""Jittor vs PyTorch on one SwAV training trajectory: same weights, same crops, each step.

Every step copies the Jittor weights into the PyTorch reference (experiments/swav_torch_ref.py, float64), compares
the SwAV-loss gradients of all parameters, then takes the step in both (prototype normalisation, freezing,
momentum SGD with weight decay, or LARC with --larc) and compares the parameters after it.
  .venv/bin/python experiments/swav_grad_check.py [--base-lr 0.1] [--larc 0.001] [--steps 5]
Seen: gradients agree to ~3e-3 relative for the worst parameter (BN parameters, float32 vs float64), ~2e-5
median (with LARC some batches reach ~1e-2 worst / 5e-3 median, from Sinkhorn's exp(score / 0.05), without
drift), and so do the updated parameters. Linear biases in front of a BatchNorm (true gradient 0) are skipped.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import uss  # noqa: F401,E402
import jittor as jt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from swav_torch_ref import LARC as TorchLARC, SwAVModel, sinkhorn  # noqa: E402
from uss.data.multicrop import MultiCropDataset  # noqa: E402
from uss.data.split import ImageNetSSplit  # noqa: E402
from uss.losses import swapped_prediction_loss, swav_codes  # noqa: E402
from uss.models import build_model  # noqa: E402
from uss.training.swav_task import set_trainable as _set_trainable  # noqa: E402
from uss.training.optim import LARC  # noqa: E402


def torch_swav_loss(output, bs, n_crops, eps=0.05, iters=3, T=0.1):
    loss = 0
    for crop_id in (0, 1):
        q = sinkhorn(output[bs * crop_id: bs * (crop_id + 1)].detach(), eps, iters)[-bs:]
        sub = 0
        for v in np.delete(np.arange(n_crops), crop_id):
            sub -= torch.mean(torch.sum(q * torch.log_softmax(output[bs * v: bs * (v + 1)] / T, dim=1), dim=1))
        loss += sub / (n_crops - 1)
    return loss / 2


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="data/toy")
    ap.add_argument("--base-lr", "--lr", dest="lr", type=float, default=0.1)
    ap.add_argument("--larc", type=float, default=0.0)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--freeze-prototypes-niters", "--freeze", dest="freeze", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(2)
    jt.set_global_seed(0)
    K, B, wd = 20, 8, 1e-5
    ds = MultiCropDataset(ImageNetSSplit(a.data, "train"), [64, 32], [2, 2], [0.4, 0.1], [1, 0.4], batch_size=B,
                          blur_sigma=0.5)
    jm = build_model("resnet18", "pretrain", n_prototypes=K, hidden_dim=512)
    jm.train()
    tm = SwAVModel("resnet18", K).double()
    tm.train()
    tp = dict(tm.named_parameters())
    if a.larc:
        jopt = LARC(jm.parameters(), lr=a.lr, momentum=0.9, weight_decay=wd, trust_coefficient=a.larc)
        topt = TorchLARC(torch.optim.SGD(tm.parameters(), lr=a.lr, momentum=0.9, weight_decay=wd), a.larc)
    else:
        jopt = jt.optim.SGD(jm.parameters(), lr=a.lr, momentum=0.9, weight_decay=wd)
        topt = torch.optim.SGD(tm.parameters(), lr=a.lr, momentum=0.9, weight_decay=wd)

    def jloss(crops):
        o = jm([jt.array(c) for c in crops])
        codes = swav_codes(o.scores, o.embedding, jm.prototypes.weight, B, [0, 1], None, 0.05, 3)
        return swapped_prediction_loss(o.scores, codes, B, [0, 1], 0.1)

    for it in range(a.steps):
        items = [ds[it * B + i] for i in range(B)]
        crops = [np.stack([x[0][c] for x in items]) for c in range(4)]
        _set_trainable([jm.prototypes.weight], it >= a.freeze)
        jm.prototypes.normalize_prototypes()
        jm.prototypes.weight.sync()
        state = {k: torch.from_numpy(v.numpy()).double() for k, v in jm.state_dict().items() if k in tm.state_dict()}
        tm.load_state_dict(state, strict=False)
        jp = dict(jm.named_parameters())
        names = [n for n in tp if not jp[n].is_stop_grad()]
        lj = jloss(crops)
        gj = jt.grad(lj, [jp[n] for n in names])
        tm.zero_grad()
        lt = torch_swav_loss(tm([torch.from_numpy(c).double() for c in crops])[1], B, 4)
        lt.backward()
        rel = sorted(((np.linalg.norm(g.numpy() - tp[n].grad.numpy()) / (np.linalg.norm(tp[n].grad.numpy()) + 1e-12), n)
                      for n, g in zip(names, gj) if np.linalg.norm(tp[n].grad.numpy()) > 1e-6), reverse=True)
        if it < a.freeze:
            tm.prototypes.weight.grad = None
        topt.step()
        jopt.step(jloss(crops))
        jp = dict(jm.named_parameters())
        prel = sorted(((np.linalg.norm(jp[n].numpy() - p.detach().numpy())
                        / (np.linalg.norm(p.detach().numpy()) + 1e-12), n)
                       for n, p in tp.items()), reverse=True)
        print(f"step {it}: loss jittor {lj.item():.6f} torch {lt.item():.6f} | grad rel diff worst "
              f"{rel[0][0]:.1e} ({rel[0][1]}), median {np.median([r[0] for r in rel]):.1e} | params after step, "
              f"worst rel diff {prel[0][0]:.1e} ({prel[0][1]})", flush=True)


if __name__ == "__main__":
    main()
