"""test.py (uss.stages.refined_inference, uss.test_time_refinement): majority-vote refinement inside region masks,
the all-background fallbacks (SAM point prompts, best superpixel), a SIGKILLed run resuming to identical files,
the benchmark zip and its mIoU, odd input images, sharding and one-line input errors."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from PIL import Image

from tests.helpers import ROOT, kill_after_files, random_finetuned_checkpoint
from uss.data import layout
from uss.data.label_png import read_label_png, write_label_png
from uss.data.split import ImageNetSSplit
from uss.data.toy import generate as make_toy
from uss.errors import InputError
from uss.evaluation.evaluator import evaluate_folder
from uss.evaluation.matching import save_match
from uss.prediction import enlarge_nearest, inference_size, predict_label
from uss.test_time_refinement import (RefinedSegmenter, cell_centres, dominant_class, majority_vote, softmax,
                                      spread_cells)
from uss.stages import refined_inference

import jittor as jt

K = 3
SUPERPIXEL = ["--proposer", "superpixel", "--superpixel-scale", "50", "--short-side", "64", "--threads", "1",
              "--quiet"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Toy dataset (3 classes, 64 px, 9 validation + 6 test images with GT), a randomly initialised fine-tuned
    checkpoint (saved as main_pixel_finetuning.py does) and random vit_tiny SAM weights."""
    from uss.sam import build_sam

    base = tmp_path_factory.mktemp("test_py")
    data = str(base / "toy")
    make_toy(data, classes=K, size=64, train_per_class=1, val_per_class=3, test_per_class=2, progress=False)
    random_finetuned_checkpoint(str(base / "ft"), K)
    jt.set_global_seed(0)
    sam = str(base / "sam_vit_tiny.pth")
    jt.save(build_sam("vit_tiny").state_dict(), sam)
    return {"data": data, "ckpt": str(base / "ft" / "checkpoint.safetensors"), "sam": sam, "base": base}


def args_for(setup, out, *extra):
    return ["--data", setup["data"], "--checkpoint", setup["ckpt"], "--out", str(out), *SUPERPIXEL, *extra]


def png_files(folder):
    """{relative path: bytes} of the PNGs under folder."""
    return {os.path.relpath(os.path.join(d, f), folder): open(os.path.join(d, f), "rb").read()
            for d, _, files in os.walk(folder) for f in files if f.endswith(".png")}


# ------------------------------------------------------------------------------------------ refinement


def test_majority_vote_inside_masks_smaller_overwrite_larger():
    prediction = np.array([[0, 0, 1, 1, 2, 2],
                           [0, 1, 1, 1, 2, 2],
                           [0, 1, 1, 3, 3, 2],
                           [3, 3, 0, 3, 3, 0]], np.int32)
    big = np.zeros(prediction.shape, bool)
    big[:, :4] = True  # ids inside: 0 x5, 1 x7, 3 x4 -> 1
    small = np.zeros(prediction.shape, bool)
    small[2:4, 2:5] = True  # 1, 3, 3 / 0, 3, 3 -> 3 (votes on the model's prediction, not on the painted map)
    tie = np.zeros(prediction.shape, bool)
    tie[0:2, 4] = [True, True]
    tie[3, 5] = True  # 2, 2, 0 -> 2
    even = np.zeros(prediction.shape, bool)
    even[0, 1:3] = True  # 0, 1: a tie goes to the smaller id
    refined = majority_vote(prediction, [big, small, tie, even])
    expected = np.array([[1, 0, 0, 1, 2, 2],
                         [1, 1, 1, 1, 2, 2],
                         [1, 1, 3, 3, 3, 2],
                         [1, 1, 3, 3, 3, 2]], np.int32)
    np.testing.assert_array_equal(refined, expected)
    np.testing.assert_array_equal(majority_vote(prediction, []), prediction)
    assert majority_vote(prediction, [np.zeros_like(big)]).tolist() == prediction.tolist()  # empty mask: no-op
    with pytest.raises(ValueError, match="does not fit"):
        majority_vote(prediction, [np.ones((2, 2), bool)])


def test_segmenter_sorts_masks_largest_first():
    prediction = np.zeros((4, 4), np.int32)
    prediction[:, :2] = 2
    big = np.ones((4, 4), bool)  # votes: 2 x8, 0 x8 -> 0
    small = np.zeros((4, 4), bool)
    small[:2, :3] = True  # 2 x4, 0 x2 -> 2

    class Fixed:
        def propose(self, image):
            return [small, big]  # smallest first: the segmenter must sort by area

    scale = np.ones((10, 10), np.int32)  # 40 x 40: above the size that gets enlarged for the proposer
    prediction, small, big = (np.kron(a.astype(np.int32), scale) for a in (prediction, small, big))
    small, big = small.astype(bool), big.astype(bool)
    segmenter = RefinedSegmenter(None, Fixed())
    refined = majority_vote(prediction, segmenter.regions(np.zeros((40, 40, 3), np.uint8)))
    assert (refined[small] == 2).all() and (refined[~small] == 0).all()


def test_dominant_class_and_spread_points():
    logits = np.zeros((4, 3, 3), np.float32)
    logits[0] = 5.0  # background wins everywhere ...
    logits[2, 0, 0] = 4.0  # ... but class 2 has more mass than classes 1 and 3
    logits[3, 2, 2] = 3.0
    probabilities = softmax(logits)
    np.testing.assert_allclose(probabilities.sum(0), 1.0, rtol=1e-9)
    assert dominant_class(probabilities) == 2
    values = np.arange(64, dtype=np.float64).reshape(8, 8)
    # spacing 1 on an 8 x 8 map: the 5 best cells; with spacing 3 they are spread apart
    assert spread_cells(values, 5, highest=True) == [(7, 7), (7, 6), (7, 5), (7, 4), (7, 3)]
    spread = spread_cells(values, 5, highest=True, spacing=3)
    assert spread[0] == (7, 7) and len(spread) == 5
    assert all(max(abs(a[0] - b[0]), abs(a[1] - b[1])) >= 3 for i, a in enumerate(spread) for b in spread[:i])
    lowest = spread_cells(values, 5, highest=False, exclude=[(0, 0)])
    assert lowest == [(0, 1), (0, 2), (0, 3), (0, 4), (0, 5)]
    crowded = spread_cells(values[:2, :2], 5, highest=True, spacing=4)  # only 4 cells: all of them, no repeats
    assert sorted(crowded) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    np.testing.assert_allclose(cell_centres([(0, 0), (1, 3)], (2, 4), (20, 40)), [[5, 5], [35, 15]])


def _class_map_logits(cls: int, height: int = 8, width: int = 8) -> np.ndarray:
    """Logits: background everywhere; class `cls` most probable at the bottom right, least at the top left."""
    logits = np.zeros((K + 1, height, width), np.float32)
    logits[0] = 10.0
    logits[cls] = np.add.outer(np.arange(height), np.arange(width)) / 2.0
    return logits


def test_sam_fallback_prompts_5_positive_and_5_negative_points_and_takes_the_best_mask():
    image = np.zeros((32, 64, 3), np.uint8)
    logits = _class_map_logits(2)
    masks = [np.zeros((32, 64), bool) for _ in range(3)]
    masks[1][4:20, 10:30] = True
    masks[2][:, :] = True

    class Predictor:
        def set_image(self, img):
            self.shape = img.shape

        def predict(self, point_coords, point_labels, multimask_output):
            self.coords, self.labels = point_coords, point_labels
            return np.stack(masks), np.array([0.2, 0.9, 0.5], np.float32), None

        def reset_image(self):
            pass

    predictor = Predictor()
    label, used = RefinedSegmenter(None, None, sam_predictor=predictor).fallback(image, logits, [])
    assert used == "sam-points" and predictor.shape == image.shape
    assert predictor.labels.tolist() == [1] * 5 + [0] * 5
    # the 5 most probable cells of class 2 are at the bottom right, the 5 least probable at the top left
    positive = predictor.coords[:5]
    negative = predictor.coords[5:]
    assert (positive[:, 0] > 32).all() and (positive[:, 1] > 16).all()
    assert (negative[:, 0] < 32).all() and (negative[:, 1] < 16).all()
    np.testing.assert_allclose(predictor.coords[0], [(7 + 0.5) * 64 / 8, (7 + 0.5) * 32 / 8])  # the top cell
    np.testing.assert_array_equal(label, np.where(masks[1], 2, 0))  # highest predicted IoU, dominant class


def test_superpixel_fallback_labels_the_region_with_the_highest_mean_probability():
    image = np.zeros((16, 16, 3), np.uint8)
    logits = _class_map_logits(3, 4, 4)
    left = np.zeros((16, 16), bool)
    left[:, :8] = True
    bottom_right = np.zeros((16, 16), bool)
    bottom_right[8:, 8:] = True
    top_right = ~left & ~bottom_right
    label, used = RefinedSegmenter(None, None).fallback(image, logits, [left, top_right, bottom_right])
    assert used == "best-region"
    np.testing.assert_array_equal(label, np.where(bottom_right, 3, 0))


def _background_model(setup):
    """The fine-tuned model with its head forced to predict background everywhere (class 2 has most mass)."""
    from uss.checkpoints.trained import load_finetuned

    model, _ = load_finetuned(setup["ckpt"])
    weight = model.head.conv.weight.numpy() * 0.01
    weight[[0, 1, 3]] = 0.0
    model.head.conv.weight.update(jt.array(weight))
    model.head.conv.bias.update(jt.array(np.array([30.0, 0.0, 5.0, 0.0], np.float32)))
    return model


def test_all_background_image_triggers_the_fallback_with_real_models(setup):
    from uss.regions import build_proposer
    from uss.sam import SamPredictor, build_sam

    model = _background_model(setup)
    image = ImageNetSSplit(setup["data"], "validation").load(0).image
    segmenter = RefinedSegmenter(model, build_proposer("superpixel", options={"scale": 50.0}), short_side=64)
    logits, prediction, work = segmenter.predict(image)
    assert not prediction.any() and work == image.shape[:2]
    label, used = segmenter(image)
    assert used == "best-region" and set(np.unique(label)) == {0, 2}
    # SAM (vit_tiny, random weights): the prompted best mask becomes a class-2 region
    predictor = SamPredictor(build_sam("vit_tiny", setup["sam"]))
    segmenter = RefinedSegmenter(model, None, short_side=128, sam_predictor=predictor)
    logits, prediction, _ = segmenter.predict(image)
    assert not prediction.any() and logits.shape[1:] == (4, 4)
    label, used = segmenter(image)
    coords, labels = segmenter.prompt_points(softmax(logits)[2], image.shape[:2])
    assert labels.tolist() == [1] * 5 + [0] * 5
    predictor.set_image(image)
    masks, iou, _ = predictor.predict(coords, labels, multimask_output=True)
    expected = masks[int(np.argmax(iou))]
    assert used == "sam-points" and expected.any()
    np.testing.assert_array_equal(label, np.where(expected, 2, 0))


def test_prediction_before_refinement_is_pass_inference(setup):
    from uss.data.augment import network_input
    from uss.checkpoints.trained import load_finetuned

    model, _ = load_finetuned(setup["ckpt"])
    segmenter = RefinedSegmenter(model, None, short_side=64)
    rng = np.random.default_rng(0)
    for shape in ((60, 80, 3), (1100, 1000, 3)):  # the second is above the 1000 x 1000 rule
        image = np.kron(rng.integers(0, 255, (shape[0] // 20, shape[1] // 20, 3), dtype=np.uint8),
                        np.ones((20, 20, 1), np.uint8))
        logits, prediction, work = segmenter.predict(image)
        assert work == inference_size(*shape[:2]) and logits.shape[0] == K + 1
        expected = predict_label(model, jt.array(network_input(image, 64)[None]), *shape[:2])
        np.testing.assert_array_equal(enlarge_nearest(prediction, *shape[:2]), expected)
    assert work == (1000, 909)  # PASS inference.py: (max_res, int(max_res * W / H)) above 1000 x 1000 pixels


def test_tiny_images_with_the_sam_proposer(setup):
    from uss.regions import build_proposer
    from uss.sam import SamPredictor

    proposer = build_proposer("sam", setup["sam"], "vit_tiny", {"points_per_side": 4, "pred_iou_thresh": 0.0,
                                                                 "stability_score_thresh": 0.0})
    model = _background_model(setup)  # all background: the SAM fallback runs on the tiny images too
    for predictor in (SamPredictor(proposer.model), None):
        segmenter = RefinedSegmenter(model, proposer, short_side=64, sam_predictor=predictor)
        for shape in ((1, 1, 3), (1, 7, 3), (5, 40, 3)):  # SAM's crops of a few pixels would be empty
            label, used = segmenter(np.full(shape, 90, np.uint8))  # masks of another size would raise
            assert label.shape == shape[:2]
            assert used in (("sam-points", "sam-points-empty") if predictor else ("best-region", "no-region"))


# ------------------------------------------------------------------------------ whole runs, the zip


@pytest.fixture(scope="module")
def validated(setup):
    """An uninterrupted validation run then a test run (superpixel proposer) in this process."""
    out = setup["base"] / "result"
    assert refined_inference.main(args_for(setup, out)) == 0
    assert refined_inference.main(args_for(setup, out, "--mode", "test",
                                           "--zip", str(setup["base"] / "result.zip"))) == 0
    return out


def test_zip_layout_and_its_miou(setup, validated, tmp_path, capsys):
    out = validated
    for mode in ("validation", "test"):
        split = ImageNetSSplit(setup["data"], mode)
        pred_dir = out / mode
        for name in split.names:  # every image, at its original size
            assert read_label_png(str(pred_dir / layout.label_name(name))).shape == split.load(
                split.names.index(name)).size
        assert (pred_dir / "match.json").is_file() and (pred_dir / "method.txt").is_file()
    # the test split uses the validation match
    assert json.load(open(out / "test" / "match.json")) == json.load(open(out / "validation" / "match.json"))
    zip_path = setup["base"] / "result.zip"
    with zipfile.ZipFile(zip_path) as archive:
        entries = sorted(archive.namelist())
        archive.extractall(tmp_path / "unzipped")
    split = ImageNetSSplit(setup["data"], "test")
    assert entries == sorted([layout.label_name(n) for n in split.names] + ["match.json", "method.txt"])
    assert {e.split("/")[0] for e in entries if "/" in e} == set(layout.load_categories(setup["data"]))
    assert "resnet18 + linear head" in (tmp_path / "unzipped" / "method.txt").read_text()
    result = evaluate_folder(str(tmp_path / "unzipped"), split.segmentation_dir, layout.load_categories(setup["data"]),
                             match=str(tmp_path / "unzipped" / "match.json"), progress=False)
    written = json.load(open(out / "test_result.json"))
    assert result["mIoU"] == pytest.approx(written["mIoU"], abs=1e-12)
    # a rerun keeps every file, re-evaluates and prints the same mIoU
    before = png_files(out / "test")
    capsys.readouterr()
    assert refined_inference.main(args_for(setup, out, "--mode", "test", "--zip", str(tmp_path / "again.zip"))) == 0
    printed = capsys.readouterr().out
    assert "0 written" in printed and f"mIoU {100 * written['mIoU']:.2f}" in printed
    assert png_files(out / "test") == before


def test_killed_run_resumes_to_identical_files(setup, validated, tmp_path):
    reference = png_files(validated / "validation")
    out = tmp_path / "killed"
    command = [sys.executable, os.path.join(ROOT, "test.py"), *args_for(setup, out)]
    assert kill_after_files(command, str(out / "validation"), 2) == -signal.SIGKILL
    partial = png_files(out / "validation")
    assert 0 < len(partial) < len(reference)  # stopped part-way
    first = sorted(partial)[0]
    data = (out / "validation" / first).read_bytes()
    (out / "validation" / first).write_bytes(data[: len(data) // 2])  # a truncated PNG is detected and redone
    (out / "validation" / ".stale.png.tmp").write_bytes(b"x")  # what a killed atomic write leaves
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert re.search(r"removed [12] temporary file", done.stdout)  # ours, and maybe the killed write's
    assert "1 of them redone" in done.stdout
    assert png_files(out / "validation") == reference
    assert sorted(os.listdir(out / "validation")) == sorted(os.listdir(validated / "validation"))
    assert json.load(open(out / "validation" / "match.json")) == \
        json.load(open(validated / "validation" / "match.json"))


# ----------------------------------------------------------------------------------- odd inputs


def _add_odd_images(root):
    """Grayscale, CMYK, alpha, 3000x2000, 1x1 and truncated images in test/n00000001 (+ names list and GT)."""
    folder = os.path.join(root, "test", "n00000001")
    rng = np.random.default_rng(0)
    images = {
        "odd_gray.JPEG": Image.fromarray(rng.integers(0, 255, (40, 50), dtype=np.uint8), "L"),
        "odd_cmyk.JPEG": Image.fromarray(rng.integers(0, 255, (30, 20, 4), dtype=np.uint8), "CMYK"),
        "odd_alpha.png": Image.fromarray(rng.integers(0, 255, (24, 36, 4), dtype=np.uint8), "RGBA"),
        "odd_big.JPEG": Image.fromarray(np.kron(rng.integers(0, 255, (20, 30, 3), dtype=np.uint8),
                                                np.ones((100, 100, 1), np.uint8))),  # 2000 x 3000
        "odd_tiny.png": Image.fromarray(np.array([[[200, 10, 10]]], np.uint8)),
        "odd_truncated.JPEG": Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)),
    }
    sizes = {}
    for name, image in images.items():
        image.save(os.path.join(folder, name))
        sizes[name] = (image.size[1], image.size[0])
    path = os.path.join(folder, "odd_truncated.JPEG")
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])
    names = [f"n00000001/{n}" for n in images]
    for name in names:
        gt = np.zeros(sizes[name.split("/")[1]], np.int32)
        gt[: max(1, gt.shape[0] // 2)] = 1
        write_label_png(os.path.join(layout.segmentation_dir(root, "test"), layout.label_name(name)), gt)
    with open(os.path.join(root, "names", "test.txt"), "a") as handle:
        handle.write("".join(n + "\n" for n in names))
    return names, sizes


@pytest.mark.slow  # runs test.py end to end
def test_odd_inputs_are_handled_or_reported_without_stopping_the_split(setup, tmp_path, capsys):
    root = str(tmp_path / "data")
    shutil.copytree(setup["data"], root)
    names, sizes = _add_odd_images(root)
    match = str(tmp_path / "match.json")
    save_match(match, {i: i for i in range(K + 1)})
    out = tmp_path / "out"
    argv = ["--data", root, "--checkpoint", setup["ckpt"], "--out", str(out), *SUPERPIXEL, "--mode", "test",
            "--match", match]
    assert refined_inference.main(argv) == 1
    captured = capsys.readouterr()
    truncated = "n00000001/odd_truncated.JPEG"
    assert "odd_truncated.JPEG" in captured.err
    for name in names:
        path = out / "test" / layout.label_name(name)
        if name == truncated:
            assert not path.exists()
        else:
            assert read_label_png(str(path)).shape == sizes[name.split("/")[1]], name
    report = (out / "test_failures.txt").read_text().splitlines()
    assert len(report) == 1 and report[0].startswith(truncated + "\t") and "cannot decode" in report[0]
    assert not (out / "test.zip").exists() and not (out / "test_result.json").exists()  # no partial zip
    # the others count: every image of the split has a prediction except the truncated one
    split = ImageNetSSplit(root, "test")
    assert sum((out / "test" / layout.label_name(n)).exists() for n in split.names) == len(split) - 1
    # --allow-failures evaluates and packs what succeeded; only the failed image is tried again
    assert refined_inference.main(argv + ["--allow-failures"]) == 0
    assert "0 written" in capsys.readouterr().out
    with zipfile.ZipFile(out / "test.zip") as archive:
        assert layout.label_name(truncated) not in archive.namelist()
        assert len([n for n in archive.namelist() if n.endswith(".png")]) == len(split) - 1
    assert json.load(open(out / "test_result.json"))["num_images"] == len(split) - 1
    # opt-in best-effort decoding: the truncated JPEG gets a prediction, a warning and a line in a list
    assert refined_inference.main(argv + ["--decode-truncated"]) == 0
    captured = capsys.readouterr()
    assert "1 written" in captured.out and re.search(r"warning: .*odd_truncated.JPEG: truncated image", captured.err)
    assert read_label_png(str(out / "test" / layout.label_name(truncated))).shape == sizes["odd_truncated.JPEG"]
    listed = (out / "test_truncated.txt").read_text().splitlines()
    assert len(listed) == 1 and listed[0].startswith(truncated + "\t")
    assert not (out / "test_failures.txt").exists()
    with zipfile.ZipFile(out / "test.zip") as archive:
        assert len([n for n in archive.namelist() if n.endswith(".png")]) == len(split)


# ------------------------------------------------------------------- sharding, SAM, input errors


def test_shard_with_the_sam_proposer_skips_evaluation_and_zip(setup, tmp_path, capsys):
    out = tmp_path / "sam"
    argv = ["--data", setup["data"], "--checkpoint", setup["ckpt"], "--out", str(out), "--proposer", "sam",
            "--sam-checkpoint", setup["sam"], "--sam-model-type", "vit_tiny", "--points-per-side", "4",
            "--crop-n-layers", "0", "--pred-iou-thresh", "0", "--stability-score-thresh", "0",
            "--min-mask-region-area", "0", "--short-side", "64", "--quiet", "--shard", "1/3"]
    assert refined_inference.main(argv) == 0
    assert "evaluation and zip skipped" in capsys.readouterr().out
    split = ImageNetSSplit(setup["data"], "validation")
    written = sorted(os.path.relpath(os.path.join(d, f), out / "validation")
                     for d, _, files in os.walk(out / "validation") for f in files)
    assert written == sorted(layout.label_name(n) for n in split.names[1::3])
    assert not (out / "validation" / "match.json").exists() and not (out / "validation.zip").exists()


def test_missing_inputs_are_one_line_errors(setup, tmp_path):
    base = ["--data", setup["data"], "--checkpoint", setup["ckpt"], "--out", str(tmp_path)]
    cases = [
        (["--data", str(tmp_path / "nodata"), "--checkpoint", setup["ckpt"]], "pass --data"),
        (["--data", setup["data"], "--checkpoint", str(tmp_path / "none.pth.tar")], "pass --checkpoint"),
        (base + ["--sam-checkpoint", str(tmp_path / "sam.pth")], "--proposer superpixel"),
        (base + ["--proposer", "superpixel", "--mode", "test", "--out", str(tmp_path / "fresh")],
         "run `python test.py --mode validation` first"),
        (base + ["--proposer", "superpixel", "--shard", "3/2"], "--shard"),
    ]
    for argv, hint in cases:
        with pytest.raises(InputError, match=hint.replace("(", r"\(")):
            refined_inference.main(argv)
    done = subprocess.run([sys.executable, os.path.join(ROOT, "test.py"), "--data", setup["data"],
                           "--checkpoint", str(tmp_path / "none.pth.tar")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "pass --checkpoint" in done.stderr


def test_upernet_checkpoint_runs_through_test_py(setup, tmp_path):
    random_finetuned_checkpoint(str(tmp_path / "ft"), K, "upernet")
    out = tmp_path / "out"
    argv = ["--data", setup["data"], "--checkpoint", str(tmp_path / "ft" / "checkpoint.safetensors"), "--out", str(out),
            *SUPERPIXEL, "--shard", "0/9"]
    assert refined_inference.main(argv) == 0
    split = ImageNetSSplit(setup["data"], "validation")
    assert read_label_png(str(out / "validation" / layout.label_name(split.names[0]))).shape == split.load(0).size


def test_any_split_folder_name_and_unmapped_ids_are_refused(setup, validated, tmp_path):
    # A split folder named testC (no GT): --mode takes any folder name. A match.json that does not map every id
    # the predictions hold is refused in one line naming the ids and files (the official evaluator raises
    # KeyError on them); the square validation match packs.
    data = tmp_path / "data"
    shutil.copytree(setup["data"], data)
    shutil.copytree(data / "test", data / "testC")
    partial = tmp_path / "partial.json"
    save_match(str(partial), {0: 0})
    argv = ["--data", str(data), "--checkpoint", setup["ckpt"], "--out", str(tmp_path / "out"), *SUPERPIXEL,
            "--mode", "testC"]
    with pytest.raises(InputError, match=r"hold ids not mapped by .*testC/match\.json or above K=3 .*: ids [123]"):
        refined_inference.main(argv + ["--match", str(partial)])
    full = validated / "validation" / "match.json"
    assert sorted(json.load(open(full))) == [str(i) for i in range(K + 1)]  # square: every id 0..K
    assert refined_inference.main(argv + ["--match", str(full), "--zip", str(tmp_path / "c.zip")]) == 0
    with zipfile.ZipFile(tmp_path / "c.zip") as archive:
        assert len([n for n in archive.namelist() if n.endswith(".png")]) == len(ImageNetSSplit(str(data), "testC"))
