"""Mask-based pseudo labels (sam_refine.py): masks override pixels by area order, the given centroids and
thresholds are the ones used, and an interrupted run resumes to the same files."""
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers import ROOT, kill_after_files, random_pixel_attention_checkpoint
from uss.data.label_png import read_label_png
from uss.data.split import ImageNetSSplit
from uss.data.toy import generate as make_toy
from uss.errors import InputError
from uss.regions import build_proposer, sort_by_area



@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("refine")
    data = str(root / "toy")
    make_toy(data, classes=3, size=64, train_per_class=4, val_per_class=2, test_per_class=1, progress=False)
    ckpt = random_pixel_attention_checkpoint(str(root / "pa"))
    cluster = root / "cluster"
    os.makedirs(cluster)
    np.save(cluster / "centroids.npy", np.random.default_rng(1).normal(size=(3, 512)).astype(np.float32))
    (cluster / "threshold.json").write_text(json.dumps({"threshold": 0.5}))
    return {"data": data, "ckpt": ckpt, "cluster": str(cluster), "root": root}


def cli(setup, *extra):
    return ["--data", setup["data"], "--pretrained", setup["ckpt"], "--cluster-dir", setup["cluster"],
            "--short-side", "64", "--proposer", "superpixel", "--superpixel-scale", "50", *extra]


def mask_labeler(setup, centroids_path=None, pixel_threshold=0.5):
    from uss.labeling.labelers import MaskLabeler, PixelLabeler, load_centroids
    from uss.checkpoints.trained import load_pixel_attention_model

    centroids = load_centroids(centroids_path or os.path.join(setup["cluster"], "centroids.npy"))
    labeler = PixelLabeler(load_pixel_attention_model(setup["ckpt"]), centroids, short_side=64)
    return MaskLabeler(labeler, build_proposer("superpixel", options={"scale": 50.0}), pixel_threshold)


def test_superpixels_partition_and_sort_largest_first():
    image = np.zeros((40, 40, 3), np.uint8)
    image[5:30, 5:30] = 200
    masks = build_proposer("superpixel", options={"scale": 50.0}).propose(image)
    assert np.array_equal(np.sum(masks, axis=0), np.ones((40, 40)))  # every pixel in exactly one region
    areas = [m.sum() for m in sort_by_area(masks)]
    assert areas == sorted(areas, reverse=True)


def test_smaller_masks_overwrite_larger_and_uncovered_pixels_keep_pixel_labels(setup):
    from uss.labeling.labelers import MaskLabeler

    base = mask_labeler(setup)
    image = ImageNetSSplit(setup["data"], "train").load(0).image
    big = np.zeros(image.shape[:2], bool)
    big[:, :40] = True
    small = np.zeros_like(big)
    small[10:20, 10:20] = True

    class Fixed:
        name = "fixed"

        def propose(self, _):
            return [small, big]  # given smallest first: the labeler must sort by area itself

    labeler = MaskLabeler(base.labeler, Fixed(), pixel_threshold=0.5)
    per_pixel, masks, classes, attention = labeler.regions(image)
    assert masks[0] is big and masks[1] is small
    label = labeler(image, threshold=0.0)
    assert (label[small] == classes[1]).all() and (label[big & ~small] == classes[0]).all()
    assert np.array_equal(label[:, 40:], per_pixel[:, 40:])
    assert (labeler(image, threshold=1.0)[big] == 0).all()  # mean attention < 1: every mask is background


def test_given_centroids_and_threshold_are_used(setup, tmp_path):
    from uss.stages.mask_labels import main

    split = ImageNetSSplit(setup["data"], "train")
    name = split.names[0].replace(".JPEG", ".png")
    image = split.load(0).image
    permuted = tmp_path / "permuted.npy"
    np.save(permuted, np.load(os.path.join(setup["cluster"], "centroids.npy"))[[2, 0, 1]])
    prepared = mask_labeler(setup).prepare(image)
    attention = mask_labeler(setup).regions(image)[3]
    threshold = float(np.median(attention))  # inside the range of the masks' mean attentions
    main(["generate", *cli(setup, "--sweep-dir", str(tmp_path), "--threshold", str(threshold),
                           "--out", str(tmp_path / "a"))])
    got = read_label_png(str(tmp_path / "a" / name))
    assert np.array_equal(got, prepared(threshold))
    assert not np.array_equal(got, prepared(0.0))
    (tmp_path / "threshold.json").write_text(json.dumps({"threshold": threshold}))
    main(["generate", *cli(setup, "--sweep-dir", str(tmp_path), "--centroids", str(permuted),
                           "--out", str(tmp_path / "b"))])
    expected = mask_labeler(setup, str(permuted)).prepare(image)(threshold)
    assert np.array_equal(read_label_png(str(tmp_path / "b" / name)), expected)
    # Centroid rows [2, 0, 1]: old class c (row c-1) is now row position of c-1 in the permutation.
    relabel = np.array([0, 2, 3, 1, 0])
    assert np.array_equal(expected[expected < 4], relabel[got[expected < 4]])


def test_label_free_mask_threshold_reads_the_attention_as_the_pixel_one_does(setup, tmp_path):
    from uss.labeling.labelers import MaskLabeler, PixelLabeler, load_centroids
    from uss.labeling.threshold import PER_IMAGE
    from uss.checkpoints.trained import load_pixel_attention_model
    from uss.stages.mask_labels import main

    cluster = tmp_path / "cluster"
    os.makedirs(cluster)
    centroids = os.path.join(setup["cluster"], "centroids.npy")
    (cluster / "threshold.json").write_text(json.dumps({"threshold": 0.1, "attention": PER_IMAGE,
                                                        "background": "below"}))
    sweep_dir = tmp_path / "masks"
    args = ["--data", setup["data"], "--pretrained", setup["ckpt"], "--cluster-dir", str(cluster),
            "--centroids", centroids, "--short-side", "64", "--proposer", "superpixel", "--superpixel-scale", "50",
            "--sweep-dir", str(sweep_dir)]
    main(["label-free", *args])
    chosen = json.load(open(sweep_dir / "threshold.json"))
    assert chosen["attention"] == PER_IMAGE and chosen["background"] == "below"
    main(["generate", *args, "--out", str(tmp_path / "labels")])
    split = ImageNetSSplit(setup["data"], "train")
    labeler = MaskLabeler(PixelLabeler(load_pixel_attention_model(setup["ckpt"]), load_centroids(centroids), 64,
                                       PER_IMAGE), build_proposer("superpixel", options={"scale": 50.0}), 0.1)
    expected = labeler(split.load(0).image, chosen["threshold"])
    assert np.array_equal(read_label_png(str(tmp_path / "labels" / split.names[0].replace(".JPEG", ".png"))),
                          expected)
    # A swept (raw) mask threshold next to a label-free per-pixel one is refused, naming both files.
    (sweep_dir / "threshold.json").write_text(json.dumps({"threshold": 0.5}))
    with pytest.raises(InputError, match="both swept or both label-free"):
        main(["generate", *args, "--out", str(tmp_path / "mixed")])


def test_missing_sam_checkpoint_is_a_clear_error(setup, tmp_path):
    from uss.stages.mask_labels import main

    with pytest.raises(InputError, match="absent.pth"):
        main(["sweep", "--data", setup["data"], "--pretrained", setup["ckpt"], "--cluster-dir", setup["cluster"],
              "--sweep-dir", str(tmp_path), "--proposer", "sam", "--sam-checkpoint", str(tmp_path / "absent.pth")])


def test_killed_run_resumes_to_identical_files(setup, tmp_path):
    command = [sys.executable, os.path.join(ROOT, "sam_refine.py"), "generate",
               *cli(setup, "--sweep-dir", str(tmp_path), "--threshold", "0.5")]
    subprocess.run(command + ["--out", str(tmp_path / "whole")], check=True, capture_output=True)
    reference = {p: open(os.path.join(tmp_path / "whole", p), "rb").read()
                 for p in [n.replace(".JPEG", ".png") for n in ImageNetSSplit(setup["data"], "train").names]}
    out = tmp_path / "killed"
    assert kill_after_files(command + ["--out", str(out)], out, 3) == -signal.SIGKILL
    partial = [f for _, _, files in os.walk(out) for f in files if f.endswith(".png")]
    assert 0 < len(partial) < len(reference)  # stopped part-way
    subprocess.run(command + ["--out", str(out)], check=True, capture_output=True)
    for path, data in reference.items():
        assert open(os.path.join(out, path), "rb").read() == data, path
    leftovers = [f for _, _, files in os.walk(out) for f in files if not f.endswith(".png")]
    assert leftovers == []  # the temp file of the killed write is cleaned up
