"""Test-time segmentation: fine-tuned model + region-mask refinement -> label PNGs, match.json, evaluation and
the benchmark zip. Defaults: --checkpoint weights/finetune/checkpoint.pth.tar, --proposer sam with
--sam-checkpoint weights/sam_vit_b_01ec64.pth, --data data/ImageNetS50, --out result. See `python test.py --help`
and src/uss/stages/test_refine.py."""
import uss  # noqa: F401  (jittor environment defaults)
from uss.errors import run_cli
from uss.stages.test_refine import main

if __name__ == "__main__":
    run_cli(main)
