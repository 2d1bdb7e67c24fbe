"""PASS pixel-level fine-tuning on pseudo labels (backbone + 1x1-conv head, masked cross-entropy). See `--help`."""
import uss  # noqa: F401  (jittor environment defaults)
from uss.errors import run_cli
from uss.stages.finetune import main

if __name__ == "__main__":
    run_cli(main)
