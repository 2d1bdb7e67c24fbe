"""k-means clustering of attention-pooled embeddings (centroids.npy). See `--help` and train_2.sh."""
import uss  # noqa: F401  (jittor environment defaults)
from uss.errors import run_cli
from uss.stages.cluster import main

if __name__ == "__main__":
    run_cli(main)
