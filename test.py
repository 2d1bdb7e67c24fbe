"""Test-time segmentation: fine-tuned model + region-mask refinement -> label PNGs, match.json, evaluation and
the benchmark zip. Defaults: --checkpoint weights/finetune/checkpoint.safetensors, --proposer sam with
--sam-checkpoint weights/sam_vit_b_01ec64.pth, --data data/ImageNetS50, --out result. See `python test.py --help`,
src/uss/stages/refined_inference.py (the CLI) and src/uss/test_time_refinement.py (the method)."""
import uss  # noqa: F401  (jittor environment defaults)
from uss.errors import run_cli
from uss.stages.refined_inference import main

if __name__ == "__main__":
    run_cli(main)
