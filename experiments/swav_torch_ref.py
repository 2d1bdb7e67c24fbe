"""PyTorch reference of the PASS/SwAV image-level pretraining on the demo data (for debugging the Jittor port).

The SwAV step follows facebookresearch/swav main_swav.py (prototype normalisation, Sinkhorn, swapped
prediction, prototype freezing, queue, optional LARC as apex's with clip=False), the projection head follows
PASS (Linear-BN-ReLU-Linear-BN(affine=False)), the crops come from uss.data.multicrop.MultiCropDataset.
After training: k-means (k=10) on L2-normalised pooled C5 features of the 96-px training images -> NMI.

  python experiments/swav_torch_ref.py --config '{"base_lr": 0.3, "epochs": 15, "larc": 0.001}'
  python experiments/swav_torch_ref.py --sweep experiments/sweeps/sweep1.jsonl --out DIR   (in parallel)

A config is a JSON dict keyed by main_pretrain.py's argument names (--base-lr -> base_lr; see train()).

Runs without jittor (a stub stands in for jittor.dataset), so it also runs on a bare GPU machine.
"""
import argparse
import json
import math
import os
import sys
import time
import types

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
try:
    import uss  # noqa: F401
    import jittor  # noqa: F401
except Exception:  # no jittor: stub the only piece the data pipeline needs
    class _Dataset:
        def __init__(self, **kw):
            pass

        def set_attrs(self, **kw):
            pass
    jt_stub = types.ModuleType("jittor")
    ds_stub = types.ModuleType("jittor.dataset")
    ds_stub.Dataset = _Dataset
    jt_stub.dataset = ds_stub
    sys.modules["jittor"] = jt_stub
    sys.modules["jittor.dataset"] = ds_stub

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from uss.data import augment, layout  # noqa: E402
from uss.data.multicrop import MultiCropDataset  # noqa: E402
from uss.data.split import ImageNetSSplit  # noqa: E402


# ---------------------------------------------------------------- model
class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + idt)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + idt)


class ResNet(nn.Module):
    def __init__(self, block, layers):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make(block, 64, layers[0])
        self.layer2 = self._make(block, 128, layers[1], 2)
        self.layer3 = self._make(block, 256, layers[2], 2)
        self.layer4 = self._make(block, 512, layers[3], 2)
        self.out_dim = 512 * block.expansion
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _make(self, block, planes, blocks, stride=1):
        ds = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            ds = nn.Sequential(nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                               nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, ds)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class SwAVModel(nn.Module):
    def __init__(self, arch="resnet18", K=50, hidden=512, dim=128, final_bn=True):
        super().__init__()
        self.backbone = ResNet(BasicBlock, [2, 2, 2, 2]) if arch == "resnet18" else ResNet(Bottleneck, [3, 4, 6, 3])
        layers = [nn.Linear(self.backbone.out_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                  nn.Linear(hidden, dim)]
        if final_bn:
            layers.append(nn.BatchNorm1d(dim, affine=False))
        self.projection_head = nn.Sequential(*layers)
        self.prototypes = nn.Linear(dim, K, bias=False)

    def forward(self, inputs):
        sizes = torch.tensor([i.shape[-1] for i in inputs])
        idx_crops = torch.cumsum(torch.unique_consecutive(sizes, return_counts=True)[1], 0)
        start, outs = 0, []
        for end in idx_crops:
            outs.append(self.backbone(torch.cat(inputs[start:end])).mean(dim=(2, 3)))
            start = end
        x = F.normalize(self.projection_head(torch.cat(outs)), dim=1, p=2)
        return x, self.prototypes(x)


# ---------------------------------------------------------------- SwAV
@torch.no_grad()
def sinkhorn(out, eps, iters):
    Q = torch.exp(out / eps).t()
    B, K = Q.shape[1], Q.shape[0]
    Q /= torch.sum(Q)
    for _ in range(iters):
        Q /= torch.sum(Q, dim=1, keepdim=True)
        Q /= K
        Q /= torch.sum(Q, dim=0, keepdim=True)
        Q /= B
    Q *= B
    return Q.t()


class LARC:
    """apex.parallel.LARC (as SwAV uses it): per-parameter lr scaled by trust * |w| / (|g| + wd |w|)."""

    def __init__(self, optimizer, trust_coefficient=0.001, clip=False, eps=1e-8):
        self.optim, self.trust, self.clip, self.eps = optimizer, trust_coefficient, clip, eps

    @property
    def param_groups(self):
        return self.optim.param_groups

    def zero_grad(self):
        self.optim.zero_grad()

    def step(self):
        with torch.no_grad():
            wds = []
            for group in self.optim.param_groups:
                wd = group.get("weight_decay", 0)
                wds.append(wd)
                group["weight_decay"] = 0
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    pn, gn = torch.norm(p.data), torch.norm(p.grad.data)
                    if pn != 0 and gn != 0:
                        alr = self.trust * pn / (gn + pn * wd + self.eps)
                        if self.clip:
                            alr = min(alr / group["lr"], 1)
                        p.grad.data += wd * p.data
                        p.grad.data *= alr
        self.optim.step()
        for i, group in enumerate(self.optim.param_groups):
            group["weight_decay"] = wds[i]


def collate(items):
    n_crops = len(items[0][0])
    return [torch.from_numpy(np.stack([it[0][c] for it in items])) for c in range(n_crops)]


class _Collate:
    def __init__(self, ds):
        self.ds = ds

    def __call__(self, idx):
        return collate([self.ds[i] for i in idx])


def eval_nmi(model, data, size, device):
    from sklearn.cluster import KMeans
    from sklearn.metrics import normalized_mutual_info_score
    from scipy.optimize import linear_sum_assignment
    split = ImageNetSSplit(data, "train")
    cats = layout.load_categories(data)
    classes = np.array([layout.class_of(n, cats) for n in split.names]) - 1
    model.eval()
    feats = []
    with torch.no_grad():
        for i in range(0, len(split), 100):
            x = np.stack([augment.normalize(augment.resize_short_side(split.load(j).image, size))
                          for j in range(i, min(i + 100, len(split)))])
            f = model.backbone(torch.from_numpy(x).to(device)).mean(dim=(2, 3)).cpu().numpy()
            feats.append(f / np.linalg.norm(f, axis=1, keepdims=True))
    model.train()
    feats = np.concatenate(feats)
    labels = KMeans(n_clusters=10, n_init=10, max_iter=50, random_state=0).fit_predict(feats)
    counts = np.zeros((10, 10), dtype=np.int64)
    np.add.at(counts, (labels, classes), 1)
    r, c = linear_sum_assignment(-counts)
    return float(normalized_mutual_info_score(classes, labels)), float(counts[r, c].sum() / len(labels))


def train(cfg):
    # keys are main_pretrain.py's argument names (--base-lr -> base_lr); the last two lines are this script's own
    c = dict(data="data/toy", arch="resnet18", nmb_prototypes=50, hidden_mlp=512, base_lr=0.3, final_lr=0.003,
             warmup_epochs=1, epochs=15, wd=1e-6, batch_size=32, epsilon=0.05, temperature=0.1, sinkhorn_iterations=3,
             freeze_prototypes_niters=20, queue_length=0, epoch_queue_starts=0, larc=0.0, size_crops=[96, 48],
             nmb_crops=[2, 4], min_scale_crops=[0.3, 0.1], max_scale_crops=[1.0, 0.3], blur_sigma=1.0,
             color_strength=1.0, seed=31, workers=3,
             final_bn=True, device="cuda" if torch.cuda.is_available() else "cpu", threads=0, eval_size=96,
             eval_init=False, eval_every=0, log_every=0, max_iters=0, name="run")
    unknown = sorted(set(cfg) - set(c))
    if unknown:
        raise ValueError(f"unknown config keys {unknown} (keys are main_pretrain.py's argument names)")
    c.update(cfg)
    torch.manual_seed(c["seed"])
    np.random.seed(c["seed"])
    if c["threads"]:
        torch.set_num_threads(c["threads"])
    dev = torch.device(c["device"])
    split = ImageNetSSplit(c["data"], "train")
    ds = MultiCropDataset(split, c["size_crops"], c["nmb_crops"], c["min_scale_crops"], c["max_scale_crops"],
                          seed=c["seed"], batch_size=c["batch_size"], num_workers=0, blur_sigma=c["blur_sigma"],
                          color_strength=c["color_strength"])
    model = SwAVModel(c["arch"], c["nmb_prototypes"], c["hidden_mlp"], 128, c["final_bn"]).to(dev)
    t0 = time.time()
    nmi0 = eval_nmi(model, c["data"], c["eval_size"], dev) if c["eval_init"] else None
    opt = torch.optim.SGD(model.parameters(), lr=c["base_lr"], momentum=0.9, weight_decay=c["wd"])
    if c["larc"]:
        opt = LARC(opt, c["larc"])
    ipe = len(split) // c["batch_size"]
    n_warm = ipe * c["warmup_epochs"]
    warm = np.linspace(0, c["base_lr"], n_warm)
    n_cos = ipe * (c["epochs"] - c["warmup_epochs"])
    cos = np.array([c["final_lr"] + 0.5 * (c["base_lr"] - c["final_lr"]) * (1 + math.cos(math.pi * t / n_cos))
                    for t in range(n_cos)])
    sched = np.concatenate([warm, cos])
    n_crops = sum(c["nmb_crops"])
    bs = c["batch_size"]
    queue = None
    hist = []
    it = 0
    for epoch in range(c["epochs"]):
        ds.set_epoch(epoch)
        if c["queue_length"] and epoch >= c["epoch_queue_starts"] and queue is None:
            queue = torch.zeros(2, c["queue_length"], 128, device=dev)
        order = np.random.default_rng([c["seed"], epoch]).permutation(len(split))
        batches = [order[i * bs:(i + 1) * bs] for i in range(ipe)]
        loader = torch.utils.data.DataLoader([int(epoch * len(split) + i) for i in order[:ipe * bs]],
                                             batch_size=bs, shuffle=False, num_workers=c["workers"],
                                             collate_fn=_Collate(ds),
                                             multiprocessing_context="fork" if c["workers"] else None)
        del batches
        losses = []
        for crops in loader:
            for g in opt.param_groups:
                g["lr"] = sched[it]
            with torch.no_grad():
                w = F.normalize(model.prototypes.weight.data.clone(), dim=1, p=2)
                model.prototypes.weight.copy_(w)
            crops = [x.to(dev, non_blocking=True) for x in crops]
            embedding, output = model(crops)
            embedding = embedding.detach()
            loss = 0
            for i, crop_id in enumerate([0, 1]):
                with torch.no_grad():
                    out = output[bs * crop_id: bs * (crop_id + 1)].detach()
                    if queue is not None:
                        if not torch.all(queue[i, -1, :] == 0):
                            out = torch.cat((queue[i] @ model.prototypes.weight.t(), out))
                        queue[i, bs:] = queue[i, :-bs].clone()
                        queue[i, :bs] = embedding[crop_id * bs:(crop_id + 1) * bs]
                    q = sinkhorn(out, c["epsilon"], c["sinkhorn_iterations"])[-bs:]
                subloss = 0
                for v in np.delete(np.arange(n_crops), crop_id):
                    x = output[bs * v: bs * (v + 1)] / c["temperature"]
                    subloss -= torch.mean(torch.sum(q * F.log_softmax(x, dim=1), dim=1))
                loss += subloss / (n_crops - 1)
            loss /= 2
            opt.zero_grad()
            loss.backward()
            if it < c["freeze_prototypes_niters"]:
                model.prototypes.weight.grad = None
            opt.step()
            losses.append(loss.item())
            if c["log_every"] and it % c["log_every"] == 0:
                sv = np.linalg.svd(embedding[:bs].cpu().numpy(), compute_uv=False)
                print(c["name"], it, round(loss.item(), 4), "sv", sv[:3].round(2), flush=True)
            it += 1
            if c["max_iters"] and it >= c["max_iters"]:
                break
        sv = np.linalg.svd(embedding[:bs].cpu().numpy(), compute_uv=False)
        row = [epoch, round(float(np.mean(losses)), 4), [round(float(s), 2) for s in sv[:3]]]
        if c["eval_every"] and (epoch + 1) % c["eval_every"] == 0 and epoch + 1 < c["epochs"]:
            row.append(round(eval_nmi(model, c["data"], c["eval_size"], dev)[0], 4))
        hist.append(row)
    train_s = time.time() - t0
    nmi, acc = eval_nmi(model, c["data"], c["eval_size"], dev)
    res = {"name": c["name"], "nmi": round(nmi, 4), "acc": round(acc, 4), "nmi_init": nmi0,
           "train_s": round(train_s, 1), "iters": it, "ln_K": round(math.log(c["nmb_prototypes"]), 4), "hist": hist,
           "cfg": {k: v for k, v in cfg.items() if k != "name"}}
    return res


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--sweep", help="json lines, one config dict each")
    p.add_argument("--out", default="runs/swav_ref")
    p.add_argument("--parallel", type=int, default=4)
    p.add_argument("--config", default="{}", help="one config as a json dict")
    a = p.parse_args()
    if not a.sweep:
        print(json.dumps(train(json.loads(a.config))), flush=True)
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed
    cfgs = [json.loads(line) for line in open(a.sweep) if line.strip() and not line.startswith("#")]
    os.makedirs(a.out, exist_ok=True)
    with ProcessPoolExecutor(a.parallel, mp_context=mp.get_context("spawn")) as pool:
        with open(os.path.join(a.out, "results.jsonl"), "a") as f:
            for fut in as_completed([pool.submit(_safe_train, c) for c in cfgs]):
                res = fut.result()
                line = json.dumps(res)
                print(json.dumps({k: res.get(k) for k in ("name", "nmi", "acc", "nmi_init", "train_s", "error")})
                      + " " + json.dumps([[h[0], h[1]] + h[3:] for h in res.get("hist", [])]), flush=True)
                f.write(line + "\n")
                f.flush()


def _safe_train(cfg):
    try:
        return train(cfg)
    except Exception as e:  # keep the sweep going
        import traceback
        return {"name": cfg.get("name"), "error": repr(e), "tb": traceback.format_exc()[-800:]}


if __name__ == "__main__":
    main()
