"""Write a pretraining checkpoint whose backbone comes from another checkpoint (uss.checkpoints.native.swap_backbone).

benchmarks/stage_ceilings.sh runs the pixel-attention stage, which starts from a pretraining checkpoint, on a
backbone fine-tuned on the true train masks. Both files are read weights-only.
    .venv/bin/python benchmarks/swap_backbone.py BASE.safetensors DONOR.safetensors OUT.safetensors
"""
import argparse
from typing import List, Optional

from uss.errors import run_cli
from uss.checkpoints.native import swap_backbone


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", help="pretraining checkpoint (keeps its heads, prototypes and arguments)")
    parser.add_argument("donor", help="checkpoint whose backbone.* tensors replace the base's")
    parser.add_argument("out")
    args = parser.parse_args(argv)
    print(f"{args.out}: {swap_backbone(args.base, args.donor, args.out)} backbone tensors from {args.donor}")


if __name__ == "__main__":
    run_cli(main)
