"""Per-pixel pseudo labels: the sweep's threshold really reaches generation, resumability, sharding."""
import json
import os
import shutil

import numpy as np
import pytest

from tests.helpers import random_pixel_attention_checkpoint
from uss.data.label_png import read_label_png, write_label_png
from uss.data.split import ImageNetSSplit
from uss.data.toy import generate as make_toy
from uss.errors import InputError


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny demo dataset, a randomly initialised pixel-attention checkpoint and random centroids."""
    root = tmp_path_factory.mktemp("pseudo")
    data = str(root / "toy")
    make_toy(data, classes=3, size=64, train_per_class=3, val_per_class=2, test_per_class=1, progress=False)
    ckpt = random_pixel_attention_checkpoint(str(root / "pa"))
    cluster = root / "cluster"
    os.makedirs(cluster)
    np.save(cluster / "centroids.npy", np.random.default_rng(0).normal(size=(3, 512)).astype(np.float32))
    return {"data": data, "ckpt": ckpt, "cluster": str(cluster), "root": root}


def labeler_for(setup):
    from uss.labeling.labelers import PixelLabeler, load_centroids
    from uss.checkpoints.trained import load_pixel_attention_model

    return PixelLabeler(load_pixel_attention_model(setup["ckpt"]),
                        load_centroids(os.path.join(setup["cluster"], "centroids.npy")), short_side=64)


def run_generate(setup, out, *extra):
    from uss.stages.pixel_labels import main

    main(["generate", "--data", setup["data"], "--pretrained", setup["ckpt"], "--cluster-dir", setup["cluster"],
          "--short-side", "64", "--out", str(out), *extra])


def test_sweep_threshold_file_is_what_generation_uses(setup, tmp_path):
    from uss.labeling.threshold import apply_threshold, load_threshold

    split = ImageNetSSplit(setup["data"], "train")
    classes, attention = labeler_for(setup)(split.load(0).image)
    # A threshold inside the attention's range, so that it matters, and not an integer (int() would give 0).
    chosen = float(np.quantile(attention, 0.5))
    assert 0 < chosen < 1
    with open(os.path.join(setup["cluster"], "threshold.json"), "w") as handle:
        json.dump({"threshold": chosen}, handle)
    assert load_threshold(os.path.join(setup["cluster"], "threshold.json")) == chosen

    run_generate(setup, tmp_path / "from_file")
    first = split.names[0].replace(".JPEG", ".png")
    from_file = read_label_png(str(tmp_path / "from_file" / first))
    assert np.array_equal(from_file, apply_threshold(classes, attention, chosen))
    assert (from_file == 0).any() and (from_file > 0).any()
    zero = apply_threshold(classes, attention, 0.0)
    assert not np.array_equal(from_file, zero)  # the regression the challenge entry had: int(0.37) == 0

    run_generate(setup, tmp_path / "explicit", "--threshold", "0")
    assert np.array_equal(read_label_png(str(tmp_path / "explicit" / first)), zero)  # --threshold overrides


def test_generation_resumes_and_redoes_broken_files(setup, tmp_path):
    out = tmp_path / "labels"
    run_generate(setup, out, "--threshold", "0.5")
    split = ImageNetSSplit(setup["data"], "train")
    paths = [out / n.replace(".JPEG", ".png") for n in split.names]
    reference = {p: p.read_bytes() for p in paths}
    # Half-written file, a wrong-size file, a missing file; the rest must be left alone.
    paths[0].write_bytes(reference[paths[0]][:30])
    write_label_png(str(paths[1]), np.zeros((5, 5), np.int32))
    os.remove(paths[2])
    untouched = {p: os.stat(p).st_mtime_ns for p in paths[3:]}
    run_generate(setup, out, "--threshold", "0.5")
    assert all(p.read_bytes() == reference[p] for p in paths)
    assert all(os.stat(p).st_mtime_ns == untouched[p] for p in paths[3:])


def test_shards_are_disjoint_and_cover_the_split(setup, tmp_path):
    out = tmp_path / "sharded"
    for shard in ("0/2", "1/2"):
        run_generate(setup, out, "--threshold", "0.5", "--shard", shard)
    names = ImageNetSSplit(setup["data"], "train").names
    assert all((out / n.replace(".JPEG", ".png")).is_file() for n in names)
    with pytest.raises(InputError, match="--shard"):
        run_generate(setup, out, "--threshold", "0.5", "--shard", "x")


def test_bad_threshold_files_are_clear_errors(tmp_path):
    from uss.labeling.threshold import load_threshold

    path = tmp_path / "threshold.json"
    with pytest.raises(InputError, match="not found"):
        load_threshold(str(path))
    for content in ('{"threshold": "0.4"}', '{"threshold": 1.7}', "nonsense", '{"other": 1}'):
        path.write_text(content)
        with pytest.raises(InputError, match="threshold.json"):
            load_threshold(str(path))


def test_sweep_writes_curve_and_choice(setup, tmp_path):
    from uss.labeling.threshold import apply_threshold, sweep

    split = ImageNetSSplit(setup["data"], "validation")
    labeler = labeler_for(setup)

    def prepare(image):
        classes, attention = labeler(image)
        return lambda threshold, side: apply_threshold(classes, attention, threshold, side)

    chosen = sweep(prepare, split, [0.0, 0.5, 1.0], 3, str(tmp_path))
    curve = json.load(open(tmp_path / "threshold_curve.json"))["curve"]
    assert [(p["threshold"], p["background"]) for p in curve] == [
        (0.0, "below"), (0.5, "below"), (1.0, "below"), (0.0, "above"), (0.5, "above"), (1.0, "above")]
    assert chosen["background"] in ("below", "above")
    assert chosen["mIoU"] == max(p["mIoU"] for p in curve)
    assert (tmp_path / "threshold_curve.png").stat().st_size > 1000
    # Threshold 1.0 makes everything background: F-measure 0 (no foreground predicted).
    assert curve[2]["FMeasure"] == 0.0


def test_sweep_on_the_standardised_attention_reaches_generation(setup, tmp_path):
    from uss.labeling.threshold import PER_IMAGE, apply_threshold, scale_attention
    from uss.stages.pixel_labels import main

    centroids = os.path.join(setup["cluster"], "centroids.npy")
    common = ["--data", setup["data"], "--pretrained", setup["ckpt"], "--cluster-dir", str(tmp_path),
              "--centroids", centroids, "--short-side", "64"]
    main(["sweep", *common, "--thresholds", "auto:11", "--attention-scale", "per-image"])
    chosen = json.load(open(tmp_path / "threshold.json"))
    curve = json.load(open(tmp_path / "threshold_curve.json"))["curve"]
    assert chosen["attention"] == PER_IMAGE and chosen["method"] == "ground-truth sweep"
    assert min(p["threshold"] for p in curve) < 0 < max(p["threshold"] for p in curve)  # standardised values
    main(["generate", *common, "--out", str(tmp_path / "labels")])
    split = ImageNetSSplit(setup["data"], "train")
    classes, attention = labeler_for(setup)(split.load(0).image)
    written = read_label_png(str(tmp_path / "labels" / split.names[0].replace(".JPEG", ".png")))
    assert np.array_equal(written, apply_threshold(classes, scale_attention(attention, PER_IMAGE),
                                                   chosen["threshold"], chosen["background"]))


def test_label_free_choice_reads_no_labels_and_reaches_generation(setup, tmp_path):
    from uss.labeling.threshold import PER_IMAGE, apply_threshold, scale_attention
    from uss.stages.pixel_labels import main

    data = tmp_path / "unlabelled"
    # The same images with every ground-truth folder removed: the choice must not need any.
    shutil.copytree(os.path.join(setup["data"], "train"), data / "train")
    centroids = os.path.join(setup["cluster"], "centroids.npy")
    main(["label-free", "--data", str(data), "--pretrained", setup["ckpt"], "--cluster-dir", setup["cluster"],
          "--short-side", "64", "--out", str(tmp_path / "chosen")])
    chosen = json.load(open(tmp_path / "chosen" / "threshold.json"))
    assert chosen["split"] == "train" and chosen["side_from"] == "border prior" and chosen["attention"] == PER_IMAGE
    main(["generate", "--data", str(data), "--pretrained", setup["ckpt"], "--cluster-dir", str(tmp_path / "chosen"),
          "--centroids", centroids, "--short-side", "64", "--out", str(tmp_path / "labels")])
    split = ImageNetSSplit(str(data), "train")
    classes, attention = labeler_for(setup)(split.load(1).image)
    written = read_label_png(str(tmp_path / "labels" / split.names[1].replace(".JPEG", ".png")))
    # Generation reads the threshold on the attention standardised within each image, as the choice did.
    standardised = scale_attention(attention, PER_IMAGE)
    assert abs(standardised.mean()) < 1e-5 and abs(standardised.std() - 1) < 1e-4
    assert np.array_equal(written, apply_threshold(classes, standardised, chosen["threshold"], chosen["background"]))


def test_crf_option_refines_what_generation_writes(setup, tmp_path):
    from uss.crf import DenseCrf
    from uss.labeling.threshold import apply_threshold

    run_generate(setup, tmp_path / "crf", "--threshold", "0.5", "--crf")
    split = ImageNetSSplit(setup["data"], "train")
    image = split.load(0).image
    expected = DenseCrf().refine_labels(image, apply_threshold(*labeler_for(setup)(image), 0.5), 4)
    assert np.array_equal(read_label_png(str(tmp_path / "crf" / split.names[0].replace(".JPEG", ".png"))), expected)
