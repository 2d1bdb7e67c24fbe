"""k-means wall time and peak memory: faiss (PASS's settings, this project's cluster.py) against the scikit-learn
path cluster.py used before (KMeans up to 200 k embeddings, MiniBatchKMeans above), on the same synthetic
L2-normalised embeddings, each run in a fresh process reading the memory-mapped file.

    .venv/bin/python benchmarks/bench_kmeans.py                       # both cases below
    .venv/bin/python benchmarks/bench_kmeans.py --cases s50 --restarts 30 --iterations 20

Cases: s50 = 64 k x 512, k 50 (ImageNet-S50, ResNet-18 embeddings); s919 = 200 k x 2048, k 919 (a sixth of
ImageNet-S919, ResNet-50 embeddings). A run of R restarts x I iterations is timed (defaults: the full 30 x 20 for
s50, 1 x 2 for s919, whose full run takes hours on a small CPU); its time per Lloyd iteration is extrapolated
linearly to PASS's 30 x 20 and to ImageNet-S919's 1.2 M embeddings (one iteration costs N x K x D), and its
memory to 1.2 M by the size of the embedding matrix. MiniBatchKMeans makes a pass over the data per
"iteration" (chunks of 65536, minibatches of 4096) and ignores restarts, as cluster.py ran it, so its full run
is 20 passes. scikit-learn's KMeans time includes its k-means++ seeding, once per restart; with few timed
iterations that seeding dominates and the per-iteration extrapolation overstates it (a lower bound for 30
restarts is 30 times the timed single-restart run).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

CASES = {"s50": (64_000, 512, 50), "s919": (200_000, 2048, 919)}
FULL_N = 1_200_000
PASS_RUNS = (30, 20)

CHILD = r"""
import json, resource, sys, time
import numpy as np
path, method, k, restarts, iterations = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
x = np.load(path, mmap_mode="r")
start = time.perf_counter()
if method == "faiss":
    from uss.clustering import kmeans
    centroids, labels, objective = kmeans(x, k, restarts, iterations, seed=31)
elif method == "sklearn-kmeans":
    from sklearn.cluster import KMeans
    model = KMeans(n_clusters=k, n_init=restarts, max_iter=iterations, random_state=31, tol=0)
    labels = model.fit_predict(np.asarray(x, dtype=np.float32))
    objective = float(model.inertia_)
else:
    from sklearn.cluster import MiniBatchKMeans
    model = MiniBatchKMeans(n_clusters=k, n_init=restarts, random_state=31, batch_size=4096)
    chunk = 65536
    for _ in range(iterations):
        for b in range(0, len(x), chunk):
            model.partial_fit(np.asarray(x[b:b + chunk], dtype=np.float32))
    labels = np.concatenate([model.predict(np.asarray(x[b:b + chunk], dtype=np.float32))
                             for b in range(0, len(x), chunk)])
    objective = float(-model.score(np.asarray(x[:200000], dtype=np.float32))) * len(x) / min(len(x), 200000)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "objective": objective}))
"""


def synthetic_embeddings(path: str, n: int, dim: int, k: int, seed: int = 0) -> None:
    """N x D float32 unit vectors around k random centres (as attention-pooled embeddings), written by chunks."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((k, dim)).astype(np.float32)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, dim))
    for begin in range(0, n, 50_000):
        stop = min(n, begin + 50_000)
        rows = centres[rng.integers(0, k, stop - begin)] + 1.5 * rng.standard_normal((stop - begin, dim), np.float32)
        out[begin:stop] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    out.flush()


def measure(path: str, method: str, k: int, restarts: int, iterations: int) -> dict:
    """Run one method in a fresh process; its wall time, peak RSS and objective."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    done = subprocess.run([sys.executable, "-c", CHILD, path, method, str(k), str(restarts), str(iterations)],
                          capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{method} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default="s50,s919")
    parser.add_argument("--methods", default="faiss,sklearn-kmeans,sklearn-minibatch")
    parser.add_argument("--restarts", type=int, default=None, help="default: 30 for s50, 1 for s919")
    parser.add_argument("--iterations", type=int, default=None, help="default: 20 for s50, 2 for s919")
    parser.add_argument("--dir", default=None, help="folder for the embedding files (default: a temp folder)")
    args = parser.parse_args()
    import faiss

    print(f"faiss {faiss.__version__} ({faiss.omp_get_max_threads()} threads), {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for case in args.cases.split(","):
            n, dim, k = CASES[case]
            restarts = args.restarts or (30 if case == "s50" else 1)
            iterations = args.iterations or (20 if case == "s50" else 2)
            path = os.path.join(tmp, f"{case}.npy")
            start = time.perf_counter()
            synthetic_embeddings(path, n, dim, k)
            data_mb = n * dim * 4 / 2 ** 20
            print(f"\n{case}: {n} x {dim}, k {k} ({data_mb:.0f} MB, made in {time.perf_counter() - start:.0f}s); "
                  f"timed {restarts} restarts x {iterations} iterations")
            header = (f"  {'method':<18} {'wall s':>8} {'peak MB':>8} {'s/iter':>8} {'30x20 s':>9} "
                      f"{'1.2M 30x20':>11} {'1.2M peak MB':>13}")
            print(header)
            for method in args.methods.split(","):
                result = measure(path, method, k, restarts, iterations)
                # MiniBatchKMeans (cluster.py's old path) ignores restarts: its full run is 20 passes, not 30 x 20.
                runs = iterations if method == "sklearn-minibatch" else restarts * iterations
                per_iter = result["seconds"] / runs
                full = per_iter * (PASS_RUNS[1] if method == "sklearn-minibatch" else PASS_RUNS[0] * PASS_RUNS[1])
                scaled = full * FULL_N / n
                peak_full = result["peak_mb"] + data_mb * (FULL_N / n - 1)
                print(f"  {method:<18} {result['seconds']:>8.1f} {result['peak_mb']:>8.0f} {per_iter:>8.2f} "
                      f"{full:>9.0f} {scaled / 3600:>9.1f} h {peak_full:>13.0f}", flush=True)


if __name__ == "__main__":
    main()
