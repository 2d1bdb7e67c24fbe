"""Group swav_torch_ref.py sweep results by config (name without its _sN seed suffix) and print a markdown table.

  python experiments/swav_sweep_summary.py DIR_OR_results.jsonl [...]

Columns are main_pretrain.py's flags (crops: --nmb-crops x --size-crops).
"""
import json
import os
import re
import sys
from collections import OrderedDict

import numpy as np

PX_BUDGET = 18 * (2 * 96 ** 2 + 4 * 48 ** 2)


def load(paths):
    rows = []
    for p in paths:
        if os.path.isdir(p):
            p = os.path.join(p, "results.jsonl")
        if os.path.exists(p):
            rows += [json.loads(line) for line in open(p) if line.strip()]
    return rows


def main():
    rows = load(sys.argv[1:])
    groups = OrderedDict()
    for r in rows:
        if r.get("error"):
            print("ERROR", r.get("name"), r.get("error"), r.get("tb", "")[-300:])
            continue
        key = re.sub(r"_s\d+$", "", r["name"])
        groups.setdefault(key, []).append(r)
    out = []
    for key, rs in groups.items():
        rs.sort(key=lambda r: r["cfg"].get("seed", 31))
        c = rs[0]["cfg"]
        sizes, nmb = c.get("size_crops", [96, 48]), c.get("nmb_crops", [2, 4])
        ep = c.get("epochs", 15)
        budget = ep * sum(s * s * n for s, n in zip(sizes, nmb)) / PX_BUDGET
        nmis = np.array([r["nmi"] for r in rs])
        accs = np.array([r["acc"] for r in rs])
        out.append((nmis.mean(), ("| {} | {} | {} | {:.1f}x | {} | {} | {} | {} | {} | {} | {} | {} "
                                  "| {:.3f} ± {:.3f} | {:.3f} | {:.0f} |").format(
            key, "+".join(f"{n}x{s}" for s, n in zip(sizes, nmb)), ep, budget, c.get("batch_size", 32),
            c.get("temperature", 0.1), c.get("base_lr", 0.3), c.get("epsilon", 0.05), c.get("nmb_prototypes", 50),
            c.get("warmup_epochs", 1), c.get("color_strength", 1.0),
            " / ".join(f"{r['nmi']:.3f}" for r in rs), nmis.mean(), nmis.std(), accs.mean(),
            np.mean([r["train_s"] for r in rs]))))
    print("| name | crops | --epochs | budget | --batch-size | --temperature | --base-lr | --epsilon "
          "| --nmb-prototypes | --warmup-epochs | --color-strength | NMI per seed | NMI mean ± sd | acc mean "
          "| train s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for _, line in sorted(out, key=lambda t: -t[0]):
        print(line)


if __name__ == "__main__":
    main()
