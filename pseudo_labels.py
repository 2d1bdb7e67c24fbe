"""PASS per-pixel pseudo labels: `sweep` the background threshold on validation, `generate` train labels.
See train_2.sh."""
import uss  # noqa: F401  (jittor environment defaults)
from uss.errors import run_cli
from uss.stages.pixel_labels import main

if __name__ == "__main__":
    run_cli(main)
