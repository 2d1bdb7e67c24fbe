"""PASS pretraining (SwAV multi-crop + deep-to-shallow + pixel-to-pixel). See `--help` and train_1.sh."""
import uss  # noqa: F401  (jittor environment defaults)
from uss.errors import run_cli
from uss.stages.pretrain import main

if __name__ == "__main__":
    run_cli(main)
