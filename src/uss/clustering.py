"""k-means clustering of attention-pooled embeddings, as PASS's cluster stage runs it (the CLI: uss.stages.cluster).

Embeddings stream into <dump>/embeddings.npy (a memory-mapped float32 N x C file written by
batches; MPI ranks fill disjoint rows), so memory stays bounded on 1.2 M images. k-means is faiss's,
as PASS's cluster/kmeans.py runs it: full Lloyd iterations on every embedding (max_points_per_centroid
10^7, so no subsampling), --restarts runs of --iterations (PASS: 30 x 20) keeping the lowest objective,
seeded (PASS drew a random seed), read straight from the memory map; on a GPU build of faiss the
distance search runs on the GPU.
"""
import os
import time

import numpy as np
from tqdm import tqdm

from uss import distributed
from uss.atomic import atomic_write_text
from uss.data import augment
from uss.data.dataset import BadFileGuard, ImageDataset
from uss.data.augment import FINETUNE_MEAN, FINETUNE_STD
from uss.data.imageops import resize_short_side
from uss.data.split import ImageNetSSplit


def eval_transform(resize: int, crop: int):
    """PASS cluster.py's view: Resize(resize) (PIL bilinear), CenterCrop(crop), normalise (std 0.229 there)."""
    def transform(image: np.ndarray) -> np.ndarray:
        view = augment.center_crop(resize_short_side(image, resize), crop)
        return augment.normalize(view, FINETUNE_MEAN, FINETUNE_STD)
    return transform


def compute_embeddings(model, split: ImageNetSSplit, path: str, *, resize: int, crop: int, batch_size: int,
                       workers: int, skip_bad_files: bool = False) -> np.ndarray:
    """Fill the memory-mapped N x C file at `path` with the unit-norm embeddings of each image's view (short side
    `resize`, centre crop `crop`); returns the map (read-only). Unreadable images get zeros when skip_bad_files."""
    import jittor as jt

    channels = model.backbone.out_channels[-1]
    index = {name: i for i, name in enumerate(split.names)}
    done_marker = path + ".done"
    if os.path.isfile(done_marker):
        return np.load(path, mmap_mode="r")
    if distributed.is_main_process():
        np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(len(split), channels)).flush()
    distributed.barrier()
    rows = np.load(path, mmap_mode="r+")
    dataset = ImageDataset(split, eval_transform(resize, crop), batch_size=batch_size, num_workers=workers)
    guard = BadFileGuard(skip_bad_files, stage="cluster")
    start = time.time()
    with jt.no_grad():
        bar = tqdm(dataset, desc="cluster: embeddings", unit="batch", disable=not distributed.is_main_process())
        for images, names, _, errors in bar:
            good = guard.check(errors)
            embedding = model.pooled_embedding(images).numpy()
            for row, name, ok in zip(embedding, names, good):
                rows[index[name]] = row if ok else 0.0
            bar.set_postfix(img_s=f"{(bar.n + 1) * batch_size / (time.time() - start):.1f}")
    rows.flush()
    guard.report()
    distributed.barrier()
    if distributed.is_main_process():
        atomic_write_text(done_marker, f"{len(split)} embeddings\n")
    return np.load(path, mmap_mode="r")


_GPU_RESOURCES: list = []


def faiss_device() -> str:
    """'gpu' when faiss is a GPU build (faiss-gpu-cu12) and sees a GPU, else 'cpu': where faiss_index searches."""
    import faiss

    return "gpu" if hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0 else "cpu"


def faiss_index(dim: int):
    """Exact L2 index: on GPU 0 when faiss is a GPU build and sees a GPU (as PASS), else on the CPU."""
    import faiss

    if faiss_device() == "gpu":
        config = faiss.GpuIndexFlatConfig()
        config.useFloat16 = False
        config.device = 0
        _GPU_RESOURCES.append(faiss.StandardGpuResources())  # must outlive the index
        return faiss.GpuIndexFlatL2(_GPU_RESOURCES[-1], dim, config)
    return faiss.IndexFlatL2(dim)


def kmeans(embeddings: np.ndarray, k: int, restarts: int, iterations: int, seed: int, chunk: int = 65536):
    """(centroids K x C float32, labels N int64, objective) of faiss k-means on the (memory-mapped) embeddings.

    PASS's settings: restarts x iterations full Lloyd steps on all N points (no subsampling), the run with the
    lowest sum of squared distances kept; deterministic for a given seed and thread count."""
    import faiss

    data = embeddings if embeddings.dtype == np.float32 and embeddings.flags["C_CONTIGUOUS"] else \
        np.ascontiguousarray(embeddings, dtype=np.float32)
    n, dim = data.shape
    if n < k:
        raise ValueError(f"k-means needs at least k={k} embeddings, got {n}")
    clustering = faiss.Clustering(dim, k)
    clustering.niter = iterations
    clustering.nredo = restarts
    clustering.seed = seed
    clustering.max_points_per_centroid = 10_000_000
    clustering.min_points_per_centroid = 1  # no warning below 39 points per centroid (small demo splits)
    index = faiss_index(dim)
    clustering.train(data, index)
    centroids = faiss.vector_to_array(clustering.centroids).reshape(k, dim).astype(np.float32)
    stats = clustering.iteration_stats
    objective = float(stats.at(stats.size() - 1).obj) if stats.size() else float("nan")
    labels = np.concatenate([index.search(np.ascontiguousarray(data[b:b + chunk]), 1)[1][:, 0]
                             for b in range(0, n, chunk)]).astype(np.int64)
    return centroids, labels, objective


def clustering_scores(labels: np.ndarray, classes: np.ndarray, k: int) -> dict:
    """NMI and Hungarian-matched accuracy of cluster labels against class ids (0-based)."""
    from scipy.optimize import linear_sum_assignment
    from sklearn.metrics import normalized_mutual_info_score

    size = max(k, int(classes.max()) + 1)
    counts = np.zeros((size, size), dtype=np.int64)
    np.add.at(counts, (labels, classes), 1)
    rows, cols = linear_sum_assignment(-counts)
    return {"nmi": float(normalized_mutual_info_score(classes, labels)),
            "accuracy": float(counts[rows, cols].sum() / len(labels))}
