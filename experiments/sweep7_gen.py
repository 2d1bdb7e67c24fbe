"""Writes the fixed-compute-budget sweeps for experiments/swav_torch_ref.py (see README.md, sweeps 7/8).

Budget: 18 epochs of the 400 demo images at crops 2x96+4x48 (27648 crop pixels per image); a variant with other
crops gets round(budget / its crop pixels) epochs.

  python experiments/sweep7_gen.py > experiments/sweeps/sweep7.jsonl              # 16 variants x seeds 1-3 at 1x
  python experiments/sweep7_gen.py --scale b18 > experiments/sweeps/sweep8.jsonl  # one variant at 2x, 4x; seeds 1-3
"""
import argparse
import json

BASE = dict(larc=0.001, temperature=0.5, base_lr=0.6, final_lr=0.006, epsilon=0.05, nmb_prototypes=50, batch_size=32,
            warmup_epochs=2, epochs=18, size_crops=[96, 48], nmb_crops=[2, 4], min_scale_crops=[0.3, 0.1],
            max_scale_crops=[1.0, 0.3], workers=1)
BUDGET_PX = 18 * (2 * 96 ** 2 + 4 * 48 ** 2)


def epochs_for(sizes, nmb, mult=1):
    return round(mult * BUDGET_PX / sum(n * s * s for s, n in zip(sizes, nmb)))


VARIANTS = [
    ("b18", {}),
    ("b18_eps0.1", dict(epsilon=0.1)),
    ("b18_T0.3", dict(temperature=0.3)),
    ("b18_T0.7", dict(temperature=0.7)),
    ("b18_lr0.3", dict(base_lr=0.3, final_lr=0.003)),
    ("b18_lr1.2", dict(base_lr=1.2, final_lr=0.012)),
    ("b18_K10", dict(nmb_prototypes=10)),
    ("b18_K30", dict(nmb_prototypes=30)),
    ("b18_K100", dict(nmb_prototypes=100)),
    ("b18_bs16", dict(batch_size=16)),
    ("b18_col0.5", dict(color_strength=0.5)),
    ("b18_wu0", dict(warmup_epochs=0)),
    ("b18_wu5", dict(warmup_epochs=5)),
    ("c80_e26", dict(size_crops=[80, 40])),
    ("c64_e40", dict(size_crops=[64, 32])),
    ("c96only_e27", dict(size_crops=[96], nmb_crops=[2], min_scale_crops=[0.3], max_scale_crops=[1.0])),
]


def config(name, variant, seed, mult=1):
    c = dict(BASE)
    c.update(variant)
    if "size_crops" in variant or mult != 1:
        c["epochs"] = epochs_for(c["size_crops"], c["nmb_crops"], mult)
    if mult != 1:
        name = f"{name}_x{mult}"
    c["seed"], c["name"] = seed, f"{name}_s{seed}"
    return c


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--scale", help="variant name: write its 2x and 4x budget runs (longest first) instead")
    p.add_argument("--seeds", default="1,2,3")
    a = p.parse_args()
    seeds = [int(s) for s in a.seeds.split(",")]
    if a.scale:
        var = dict(VARIANTS)[a.scale]
        cfgs = [config(a.scale, var, s, m) for m in (4, 2) for s in seeds]
    else:  # seed-major, so a run cut off by its time limit still has every variant at 2 seeds
        cfgs = [config(n, v, s) for s in seeds for n, v in VARIANTS]
    for c in cfgs:
        print(json.dumps(c))


if __name__ == "__main__":
    main()
