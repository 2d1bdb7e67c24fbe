"""The clustering stage: attention-pooled, L2-normalised embeddings of every training image, then k-means
(uss.clustering: memory-mapped embeddings, faiss k-means as PASS's cluster/kmeans.py runs it).

Outputs in --dump-path: embeddings.npy, centroids.npy (K x C), cluster_labels.txt (name and cluster id per
image) and cluster.json (settings, and NMI / matched accuracy when the folder names are classes, as in
ImageNet-S and the demo dataset). A folder holding centroids.npy and cluster.json is complete and skipped.
"""
import argparse
import os
import time
from typing import List, Optional

import numpy as np

from uss import distributed, options
from uss.atomic import atomic_open, atomic_write_json, atomic_write_text
from uss.clustering import clustering_scores, compute_embeddings, faiss_device, kmeans
from uss.data import layout
from uss.data.split import ImageNetSSplit
from uss.training import runner


def build_parser() -> argparse.ArgumentParser:
    parents = [options.dataset(), options.dump_path("output folder (centroids.npy, cluster.json, ...)"), options.seed(),
               options.loader(skip_help="give undecodable images zero embeddings and list them at the end instead "
                                        "of stopping")]
    parser = argparse.ArgumentParser(description="k-means on attention-pooled embeddings of the training images.",
                                     parents=parents)
    parser.add_argument("--pretrained", required=True, help="pixel-attention checkpoint")
    parser.add_argument("--num-classes", type=int, default=0, help="k (default: number of dataset categories)")
    parser.add_argument("--resize", type=int, default=256, help="short side before the centre crop")
    parser.add_argument("--crop", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--restarts", type=int, default=30, help="k-means restarts, the best kept (PASS: 30)")
    parser.add_argument("--iterations", type=int, default=20, help="k-means iterations per restart (PASS: 20)")
    return parser


def run(args: argparse.Namespace) -> str:
    """Embed, cluster and score; returns the centroids path. Skips what is complete."""
    from uss.checkpoints.trained import load_pixel_attention_model

    runner.setup_device()
    log = runner.StageLog("cluster", args.dump_path)
    os.makedirs(args.dump_path, exist_ok=True)
    centroids_path = os.path.join(args.dump_path, "centroids.npy")
    summary_path = os.path.join(args.dump_path, "cluster.json")
    if os.path.isfile(centroids_path) and os.path.isfile(summary_path):
        log.info(f"complete: {centroids_path}")
        return centroids_path
    split = ImageNetSSplit(args.data, args.split)
    categories = None if args.num_classes and layout.is_plain_folder(args.data) else layout.load_categories(args.data)
    k = args.num_classes or len(categories)
    model = load_pixel_attention_model(args.pretrained)
    log.info(f"embedding {len(split)} images of {split.image_dir} with {args.pretrained}")
    embeddings = compute_embeddings(model, split, os.path.join(args.dump_path, "embeddings.npy"), resize=args.resize,
                                    crop=args.crop, batch_size=args.batch_size, workers=args.workers,
                                    skip_bad_files=args.skip_bad_files)
    if not distributed.is_main_process():
        return centroids_path
    start = time.time()
    device = faiss_device()
    log.info(f"k-means: faiss on the {device}, {args.restarts} x {args.iterations} iterations, k={k}")
    centroids, labels, objective = kmeans(embeddings, k, args.restarts, args.iterations, args.seed)
    summary = {"k": k, "images": len(split), "dim": int(embeddings.shape[1]), "restarts": args.restarts,
               "iterations": args.iterations, "seed": args.seed, "objective": objective, "kmeans": "faiss",
               "faiss_device": device,
               "kmeans_seconds": time.time() - start, "pretrained": args.pretrained}
    classes = np.array([layout.class_of(name, categories or []) or 0 for name in split.names]) - 1
    if (classes >= 0).all():
        summary.update(clustering_scores(labels, classes, k))
        log.info(f"k={k}: NMI {summary['nmi']:.3f}, matched accuracy {summary['accuracy']:.3f} "
                 f"(folder names as classes)")
    with atomic_open(centroids_path, "wb") as handle:
        np.save(handle, centroids)
    atomic_write_text(os.path.join(args.dump_path, "cluster_labels.txt"),
                      "".join(f"{name} {label}\n" for name, label in zip(split.names, labels)))
    atomic_write_json(summary_path, summary)
    log.info(f"wrote {centroids_path} ({k} x {centroids.shape[1]}) in {log.elapsed():.0f}s")
    return centroids_path


def main(argv: Optional[List[str]] = None) -> None:
    run(build_parser().parse_args(argv))
