"""ImageNet-S evaluation: metrics against hand-computed values, matching, folder checks, CLI."""
import json
import math
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from uss.data.label_png import IGNORE, write_label_png
from uss.evaluation.cli import main as evaluate_main
from uss.evaluation import (EvaluationInputError, MatchFileError, apply_match, confusion_matrix, evaluate_arrays,
                            evaluate_folder, f_measure, format_table, hungarian_match, image_accuracy, load_match,
                            mask_to_boundary, mean_iou, save_match, unmapped_ids)
from uss.evaluation.matching import cooccurrence
from uss.evaluation.metrics import boundary_map, size_bucket, size_percent

X = IGNORE


def write_set(root, pairs):
    """pairs: {relative name: (gt, pred)} -> (pred_dir, gt_dir) with label PNGs."""
    for name, (gt, pred) in pairs.items():
        write_label_png(os.path.join(root, "gt", name), np.asarray(gt))
        if pred is not None:
            write_label_png(os.path.join(root, "pred", name), np.asarray(pred))
    os.makedirs(os.path.join(root, "pred"), exist_ok=True)
    return os.path.join(root, "pred"), os.path.join(root, "gt")


def blob_gt(rng, h, w, classes, ignore=True):
    """Background with one ellipse per class and, optionally, an ignore strip."""
    gt = np.zeros((h, w), np.int32)
    for c in classes:
        center = (int(rng.integers(w // 4, 3 * w // 4)), int(rng.integers(h // 4, 3 * h // 4)))
        axes = (int(rng.integers(3, w // 2)), int(rng.integers(3, h // 2)))
        cv2.ellipse(gt, center, axes, float(rng.uniform(0, 180)), 0, 360, int(c), -1)
    if ignore:
        gt[int(rng.integers(0, h)), :] = X
    return gt


def small_dataset(rng, num_classes=4, per_class=3, h=24, w=32):
    """Images named wnid/i.png; class c appears alone in some images and with another class in others."""
    pairs = {}
    for c in range(1, num_classes + 1):
        for i in range(per_class):
            extra = [] if i == 0 else [int(rng.integers(1, num_classes + 1))]
            pairs[f"n{c:03d}/img{i}.png"] = blob_gt(rng, h, w, [c] + extra)
    return pairs


# ----------------------------------------------------------------------------- hand-computed metrics

# Two 4x4 images, K = 2 classes, X = 1000 (ignored), no matching (ids are classes).
#
#   GT1          pred1        GT2          pred2
#   0 0 0 0      0 0 0 0      2 2 2 2      2 2 2 2
#   0 1 1 0      0 1 1 1      2 2 2 2      2 2 0 0
#   0 1 1 0      0 1 1 0      0 0 0 0      0 0 0 0
#   0 0 0 X      0 0 0 1      X X 0 0      2 2 0 0
#
# Image 1, 15 valid pixels (X dropped with the pred 1 under it): GT0 11 px -> pred0 10, pred1 1 (at
# (1,3)); GT1 4 px -> pred1 4. Image 2, 14 valid pixels (the pred 2s under X dropped): GT2 8 px ->
# pred2 6, pred0 2 (at (1,2),(1,3)); GT0 6 px -> pred0 6.
# Dataset confusion [gt][pred]: row0 = [16, 1, 0], row1 = [0, 4, 0], row2 = [2, 0, 6].
#   GT sums 17, 4, 8; pred sums 18, 5, 6.
#   IoU0 = 16 / (17 + 18 - 16) = 16/19; IoU1 = 4 / (4 + 5 - 4) = 4/5; IoU2 = 6 / (8 + 6 - 6) = 3/4.
#   mIoU = (16/19 + 4/5 + 3/4) / 3.
# F-measure (beta^2 = 0.3):
#   image 1: t = 4, p = 5, tp = 4 -> P = 4/5, R = 1 -> 1.3 * 0.8 / (0.3 * 0.8 + 1) = 1.04 / 1.24 = 26/31.
#   image 2: t = 8, p = 6, tp = 6 -> P = 1, R = 3/4 -> 1.3 * 0.75 / (0.3 + 0.75) = 0.975 / 1.05 = 13/14.
#   F = (26/31 + 13/14) / 2 = 767/868.
# Acc: image 1's largest predicted class is 1 (5 px), in GT; image 2's is 2 (6 px), in GT -> 1.0.
# Sizes: image 1 class 1 = ceil(100 * 4/15) = 27% -> ML; image 2 class 2 = ceil(100 * 8/14) = 58% -> L.
#   ML holds image 1 (its background + class 1): IoU0 = 10 / (11 + 10 - 10) = 10/11, IoU1 = 4/5, class 2
#   has no GT pixels there and is skipped -> ML = (10/11 + 4/5) / 2. L holds image 2: IoU0 = 6 / (6 + 8 - 6)
#   = 3/4, IoU2 = 6 / (8 + 6 - 6) = 3/4 -> L = 3/4. S and MS are empty -> None.
# Boundary: diagonal sqrt(32) = 5.66, 0.03 * 5.66 = 0.17 -> d = max(1, 0) = 1. The 12 border pixels are
#   boundary (the zero padding), and each of the 4 interior pixels of every map has an 8-neighbour with
#   another label, so every pixel of all four maps is boundary: the band counts equal the pixel counts
#   above and BIoU_c = IoU_c (16/19, 4/5, 3/4), mBIoU = mIoU.
GT1 = [[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, X]]
PRED1 = [[0, 0, 0, 0], [0, 1, 1, 1], [0, 1, 1, 0], [0, 0, 0, 1]]
GT2 = [[2, 2, 2, 2], [2, 2, 2, 2], [0, 0, 0, 0], [X, X, 0, 0]]
PRED2 = [[2, 2, 2, 2], [2, 2, 0, 0], [0, 0, 0, 0], [2, 2, 0, 0]]


def test_hand_computed_two_images(tmp_path):
    pred_dir, gt_dir = write_set(tmp_path, {"n01/a.png": (GT1, PRED1), "n02/b.png": (GT2, PRED2)})
    result = evaluate_folder(pred_dir, gt_dir, categories=["n01", "n02"], progress=False)
    assert result["num_images"] == 2 and result["num_classes"] == 2
    assert result["classes"] == ["background", "n01", "n02"]
    assert result["IoUs"] == pytest.approx([16 / 19, 4 / 5, 3 / 4], abs=1e-9)
    assert result["mIoU"] == pytest.approx((16 / 19 + 4 / 5 + 3 / 4) / 3, abs=1e-9)
    assert result["FMeasure"] == pytest.approx(767 / 868, abs=1e-9)
    assert result["Acc"] == 1.0
    assert result["S"] is None and result["MS"] is None
    assert result["ML"] == pytest.approx((10 / 11 + 4 / 5) / 2, abs=1e-9)
    assert result["L"] == pytest.approx(3 / 4, abs=1e-9)
    assert result["BIoUs"] == pytest.approx([16 / 19, 4 / 5, 3 / 4], abs=1e-9)
    assert result["mBIoU"] == pytest.approx((16 / 19 + 4 / 5 + 3 / 4) / 3, abs=1e-9)
    assert result["match"] is None
    # The same numbers from in-memory arrays and from the confusion-matrix helpers.
    arrays = evaluate_arrays([(np.array(GT1), np.array(PRED1)), (np.array(GT2), np.array(PRED2))], 2)
    assert arrays["mIoU"] == pytest.approx(result["mIoU"], abs=1e-12)
    conf = confusion_matrix(np.array(GT1), np.array(PRED1), 2) + confusion_matrix(np.array(GT2), np.array(PRED2), 2)
    assert conf.tolist() == [[16, 1, 0], [0, 4, 0], [2, 0, 6]]
    assert mean_iou(conf) == pytest.approx((16 / 19 + 4 / 5 + 3 / 4) / 3, abs=1e-9)
    assert f_measure(np.array(GT1), np.array(PRED1)) == pytest.approx(26 / 31, abs=1e-12)
    table = format_table(result)
    assert "n02" in table and "79.74" in table  # mIoU in percent


# One 6x6 image, K = 1, GT with an ignored pixel inside the object; prediction shifted right by one.
#
#   GT                 pred
#   0 0 0 0 0 0        0 0 0 0 0 0
#   0 1 1 1 1 0        0 0 1 1 1 1
#   0 1 X 1 1 0        0 0 1 1 1 1
#   0 1 1 1 1 0        0 0 1 1 1 1
#   0 1 1 1 1 0        0 0 1 1 1 1
#   0 0 0 0 0 0        0 0 0 0 0 0
#
# 35 valid pixels. Confusion: GT0 (20 px, the ring) -> pred0 16, pred1 4 (column 5, rows 1-4); GT1
# (15 px) -> pred0 4 (column 1), pred1 11. IoU0 = 16 / (20 + 20 - 16) = 2/3, IoU1 = 11 / (15 + 15 - 11)
# = 11/19. F: t = p = 15, tp = 11 -> P = R = 11/15 -> F = 11/15. Class 1 is ceil(100 * 15/35) = 43% -> ML.
# Boundary, d = max(1, round(0.03 * sqrt(72) = 0.25)) = 1 (border pixels are boundary):
#   GT band class 0 = the 20 ring pixels. GT band class 1: every class-1 pixel touches 0 or the X
#   (the three inner 1s next to X included) -> all 15.
#   Pred band class 0: its 20 pixels (16 on the border, column 1 touches the 1s) -> 20.
#   Pred band class 1: rows 1 and 4 (8 px) + (2,2), (3,2) (next to column 1) + (2,5), (3,5) (border)
#   = 12; (2,3), (2,4), (3,3), (3,4) are inside. (2,2) lies under X and is dropped -> 11.
#   Class 0: inter = ring minus column 5 rows 1-4 = 16, union = 20 + 20 - 16 = 24 -> 2/3.
#   Class 1: inter = row 1 cols 2-4 (3) + row 4 cols 2-4 (3) + (3,2) = 7, union = 15 + 11 - 7 = 19 -> 7/19.
#   mBIoU = (2/3 + 7/19) / 2 = 59/114.
def shifted_square():
    gt = np.zeros((6, 6), np.int32)
    gt[1:5, 1:5] = 1
    gt[2, 2] = X
    pred = np.zeros((6, 6), np.int32)
    pred[1:5, 2:6] = 1
    return gt, pred


def test_hand_computed_boundary_with_ignore(tmp_path):
    gt, pred = shifted_square()
    pred_dir, gt_dir = write_set(tmp_path, {"n01/a.png": (gt, pred)})
    result = evaluate_folder(pred_dir, gt_dir, categories=["n01"], progress=False)
    assert result["IoUs"] == pytest.approx([2 / 3, 11 / 19], abs=1e-9)
    assert result["mIoU"] == pytest.approx((2 / 3 + 11 / 19) / 2, abs=1e-9)
    assert result["FMeasure"] == pytest.approx(11 / 15, abs=1e-9)
    assert result["ML"] == pytest.approx((2 / 3 + 11 / 19) / 2, abs=1e-9)
    assert result["BIoUs"] == pytest.approx([2 / 3, 7 / 19], abs=1e-9)
    assert result["mBIoU"] == pytest.approx(59 / 114, abs=1e-9)
    # Size-wise boundary IoU: class 1 (43%) is ML, so BML covers both classes and the other buckets are empty.
    assert result["BML"] == pytest.approx(59 / 114, abs=1e-9)
    assert result["BS"] is None and result["BMS"] is None and result["BL"] is None


def test_mbiou_averages_all_classes_absent_ones_count_zero(tmp_path):
    # The same image evaluated with K = 3: classes 2 and 3 appear in neither GT nor prediction, so (as the
    # official evaluator and as mIoU) they contribute 0 to the mean over K + 1 = 4 classes.
    gt, pred = shifted_square()
    pred_dir, gt_dir = write_set(tmp_path, {"n01/a.png": (gt, pred)})
    result = evaluate_folder(pred_dir, gt_dir, categories=["n01", "n02", "n03"], progress=False)
    assert result["BIoUs"] == pytest.approx([2 / 3, 7 / 19, 0, 0], abs=1e-9)
    assert result["mBIoU"] == pytest.approx(59 / 114 / 2, abs=1e-9)
    assert result["mIoU"] == pytest.approx((2 / 3 + 11 / 19) / 4, abs=1e-9)


def test_mask_to_boundary_by_hand():
    # 7x7 (diagonal 9.9 -> d = 1): a 5x5 square at rows/cols 1-5 -> its 16-pixel outer ring is boundary,
    # the 3x3 centre is not. The same square touching the top-left border keeps the border rows as boundary.
    mask = np.zeros((7, 7), bool)
    mask[1:6, 1:6] = True
    band = mask_to_boundary(mask)
    assert band.sum() == 16 and not band[2:5, 2:5].any()
    corner = np.zeros((7, 7), bool)
    corner[0:4, 0:4] = True
    # Rows/cols 0 are on the image border; row 3 / col 3 touch the outside of the mask: 16 - 4 = 12 px,
    # leaving (1,1), (1,2), (2,1), (2,2) inside.
    assert mask_to_boundary(corner).sum() == 12
    # 100x100: d = round(0.03 * 141.4) = 4; a 40x40 square keeps a 32x32 inside -> 1600 - 1024 = 576.
    big = np.zeros((100, 100), bool)
    big[30:70, 30:70] = True
    assert mask_to_boundary(big).sum() == 576


def test_boundary_map_equals_per_class_boundaries():
    rng = np.random.default_rng(3)
    for _ in range(30):
        h, w = rng.integers(5, 70, size=2)
        label = np.kron(rng.integers(0, 4, size=(h // 4 + 1, w // 4 + 1)), np.ones((4, 4), int))[:h, :w]
        label[rng.random((h, w)) < 0.05] = X
        expected = np.zeros((h, w), bool)
        for value in np.unique(label):
            expected |= mask_to_boundary(label == value)
        assert np.array_equal(boundary_map(label), expected)


def test_accuracy_and_size_rules_by_hand():
    gt = np.array([[0, 1, 1], [0, 1, 1], [X, 0, 0]])
    # Largest predicted foreground is class 2 (3 px) which the GT lacks -> 0.
    assert image_accuracy(gt, np.array([[2, 2, 1], [2, 0, 0], [0, 0, 0]]), 2) == 0.0
    # Tie 1 vs 2 (2 px each): the lowest id wins -> class 1, present -> 1.
    assert image_accuracy(gt, np.array([[2, 2, 1], [0, 1, 0], [0, 0, 0]]), 2) == 1.0
    # No foreground predicted -> 0.
    assert image_accuracy(gt, np.zeros((3, 3), int), 2) == 0.0
    # A GT without foreground has F = 0 (official convention), whatever the prediction.
    assert f_measure(np.zeros((3, 3), int), np.zeros((3, 3), int)) == 0.0
    assert [size_percent(1, 20), size_percent(5, 100), size_percent(51, 200), size_percent(101, 200)] == [5, 5, 26, 51]
    assert [size_bucket(p) for p in (1, 5, 6, 25, 26, 50, 51, 100)] == [0, 0, 1, 1, 2, 2, 3, 3]


# ----------------------------------------------------------------------------- identity / permutation

def test_gt_against_itself_scores_one(tmp_path):
    rng = np.random.default_rng(0)
    gts = small_dataset(rng)
    pred_dir, gt_dir = write_set(tmp_path, {n: (g, g) for n, g in gts.items()})
    result = evaluate_folder(pred_dir, gt_dir, categories=["a", "b", "c", "d"], progress=False)
    for key in ("mIoU", "FMeasure", "mBIoU", "Acc"):
        assert result[key] == pytest.approx(1.0, abs=1e-9), key
    for key in ("S", "MS", "ML", "L"):
        assert result[key] is None or result[key] == pytest.approx(1.0, abs=1e-9)
    assert 0.0 <= min(result["IoUs"]) and max(result["IoUs"]) <= 1.0


def test_permuted_ids_are_recovered_by_auto_matching(tmp_path):
    rng = np.random.default_rng(1)
    gts = small_dataset(rng, num_classes=5)
    perm = np.zeros(X + 1, np.int64)
    perm[1:6] = [4, 1, 5, 2, 3]  # pred id = perm[gt class]
    # The prediction keeps the GT's ignore pixels: GT boundary bands treat the ignore region as a label of
    # its own (official), so a prediction with background there would lose a little boundary IoU.
    perm[X] = X
    pred_dir, gt_dir = write_set(tmp_path, {n: (g, perm[g]) for n, g in gts.items()})
    raw = evaluate_folder(pred_dir, gt_dir, categories=list("abcde"), progress=False)
    assert raw["mIoU"] < 0.5
    result = evaluate_folder(pred_dir, gt_dir, categories=list("abcde"), match="auto", progress=False,
                             save_match_to=str(tmp_path / "auto" / "match.json"))
    assert result["match"] == {0: 0, 4: 1, 1: 2, 5: 3, 2: 4, 3: 5}  # the inverse permutation
    assert load_match(str(tmp_path / "auto" / "match.json")) == result["match"]
    for key in ("mIoU", "FMeasure", "mBIoU", "Acc"):
        assert result[key] == pytest.approx(1.0, abs=1e-9), key
    # A saved match applied later gives the same scores.
    save_match(str(tmp_path / "match.json"), result["match"])
    again = evaluate_folder(pred_dir, gt_dir, categories=list("abcde"), match=str(tmp_path / "match.json"),
                            progress=False)
    assert again["mIoU"] == pytest.approx(1.0, abs=1e-9)


# ----------------------------------------------------------------------------- Hungarian matching

# Presence per image (predicted ids 1, 2, 3):
#   3 images GT {1} pred {1, 2};  1 image GT {1} pred {1, 3};  2 images GT {2} pred {1};  1 image GT {2} pred {1, 3}
# Co-occurrence [pred][class]: id1 = [4, 3], id2 = [3, 0], id3 = [1, 1].
# K = 2: the official square matching covers ids 1..2 only (id 3 is above K and takes no part). Greedy takes the
# largest entry first (id1 -> 1, 4) and then id2 -> 2 (0): total 4. The optimum is id1 -> 2 (3) + id2 -> 1 (3) = 6.
GREEDY_TRAP = [({1}, {1, 2})] * 3 + [({1}, {1, 3})] + [({2}, {1})] * 2 + [({2}, {1, 3})]


def test_hungarian_beats_greedy_and_ignores_ids_above_k():
    match = hungarian_match([g for g, _ in GREEDY_TRAP], [p for _, p in GREEDY_TRAP], num_classes=2)
    assert match == {0: 0, 1: 2, 2: 1}
    assert unmapped_ids([0, 1, 2, 3], match, 2) == [3]


def test_hungarian_is_square_and_breaks_zero_ties_in_increasing_order():
    # K = 3; only id 2 is ever predicted, with class 3 in both images (0 and 1000 are skipped). The official
    # square assignment still maps ids 1 and 3; they co-occur with nothing, so (tie rule) the smallest free id
    # takes the smallest free class: 1 -> 1, 3 -> 2.
    match = hungarian_match([{3, 0, X}, {1, 3}], [{2, 0}, {2, X}], num_classes=3)
    assert match == {0: 0, 1: 1, 2: 3, 3: 2}
    # Nothing predicted at all: the identity.
    assert hungarian_match([{1}, {2}], [set(), {0}], num_classes=4) == {0: 0, 1: 1, 2: 2, 3: 3, 4: 4}


def test_hungarian_optimum_equals_brute_force_and_every_id_is_mapped():
    import itertools

    rng = np.random.default_rng(3)
    for trial in range(20):
        k = int(rng.integers(2, 6))
        gts = [set(rng.choice(k, size=rng.integers(1, 3), replace=False) + 1) for _ in range(12)]
        preds = [set(rng.choice(k + 2, size=rng.integers(0, 3), replace=False)) for _ in range(12)]
        counts = cooccurrence(gts, preds, k)
        match = hungarian_match(gts, preds, k)
        assert sorted(match) == list(range(k + 1)) and sorted(match.values()) == list(range(k + 1))
        best = max(sum(counts[i, p[i]] for i in range(k)) for p in itertools.permutations(range(k)))
        assert sum(counts[i - 1, match[i] - 1] for i in range(1, k + 1)) == best


def test_auto_match_from_folder_beats_greedy(tmp_path):
    pairs = {}
    for i, (gt_classes, pred_ids) in enumerate(GREEDY_TRAP):
        gt = np.zeros((4, 4 * len(pred_ids)), np.int32)
        pred = np.zeros_like(gt)
        for k, c in enumerate(sorted(gt_classes)):
            gt[1:3, 1:3] = c
        for k, p in enumerate(sorted(pred_ids)):
            pred[:2, 4 * k:4 * k + 2] = p
        pairs[f"n{i}/x.png"] = (gt, pred)
    pred_dir, gt_dir = write_set(tmp_path, pairs)
    # K = 2: id 3 is above K; the official evaluator fails on it, this one names it and the files.
    with pytest.raises(EvaluationInputError, match=r"2 predictions .* above K=2: ids 3 in n3/x\.png, n6/x\.png"):
        evaluate_folder(pred_dir, gt_dir, categories=["a", "b"], match="auto", progress=False)
    # K = 3: id 3 co-occurs once with each of classes 1 and 2; the optimum keeps 1 -> 2, 2 -> 1, so 3 -> 3.
    result = evaluate_folder(pred_dir, gt_dir, categories=["a", "b", "c"], match="auto", progress=False)
    assert result["match"] == {0: 0, 1: 2, 2: 1, 3: 3}


def test_a_match_that_misses_a_predicted_id_is_refused(tmp_path):
    gts = small_dataset(np.random.default_rng(2), num_classes=2, per_class=2, h=12, w=16)
    pred_dir, gt_dir = write_set(tmp_path, {n: (g, g) for n, g in gts.items()})
    save_match(str(tmp_path / "partial.json"), {0: 0, 1: 1})
    with pytest.raises(EvaluationInputError, match=r"not mapped by .*partial\.json.*: ids 2 in n002/img0\.png"):
        evaluate_folder(pred_dir, gt_dir, categories=["a", "b"], match=str(tmp_path / "partial.json"),
                        progress=False)


def test_apply_match_lookup_table():
    pred = np.array([[0, 5, 9], [5, 70000 % 65536, 3]])
    out = apply_match(pred, {0: 0, 5: 2, 9: 1})
    assert out.tolist() == [[0, 2, 1], [2, 0, 0]]  # unknown ids -> background


# ----------------------------------------------------------------------------- cross-check vs a literal reference

def reference_metrics(pairs, num_classes, match):
    """Slow literal transcription of the official protocol, for cross-checking the vectorised code."""
    n = num_classes + 1
    T, P, TP = np.zeros(n), np.zeros(n), np.zeros(n)
    Ts, Ps, TPs = np.zeros((4, n)), np.zeros((4, n)), np.zeros((4, n))
    BTs, BPs, BTPs = np.zeros((4, n)), np.zeros((4, n)), np.zeros((4, n))
    bi, bg_, bp_ = np.zeros(n), np.zeros(n), np.zeros(n)
    f_total = acc_total = 0.0
    for gt, raw in pairs:
        band_gt = np.full(gt.shape, -1)
        for v in np.unique(gt):
            band_gt[mask_to_boundary(gt == v)] = v
        band_pred = np.full(gt.shape, -1)
        for v in np.unique(raw):
            band_pred[mask_to_boundary(raw == v)] = match.get(int(v), 0)
        keep = gt != X
        g, p = gt[keep], np.array([match.get(int(v), 0) for v in raw[keep]])
        bgt, bpr = band_gt[keep], band_pred[keep]
        for c in range(n):
            T[c] += np.sum(p == c)
            P[c] += np.sum(g == c)
            TP[c] += np.sum((p == c) & (g == c))
            bi[c] += np.sum((bgt == c) & (bpr == c))
            bg_[c] += np.sum(bgt == c)
            bp_[c] += np.sum(bpr == c)
        t, pp, tp = np.sum(g > 0), np.sum(p > 0), np.sum((g > 0) & (p > 0))
        rec, prec = tp / (t + 1e-20), tp / (pp + 1e-20)
        f_total += 1.3 * prec * rec / (0.3 * prec + rec + 1e-20)
        areas = [np.sum(p == c) for c in range(n)]
        label = int(np.argmax(areas[1:])) + 1
        acc_total += float(np.sum(g == label) > 0 and areas[label] > 0)
        buckets = {}
        for c in np.unique(g):
            if c:
                size = math.ceil(100.0 * np.sum(g == c) / len(g))
                buckets.setdefault(0 if size <= 5 else 1 if size <= 25 else 2 if size <= 50 else 3, []).append(c)
        for b, members in buckets.items():
            sel = np.isin(g, [0] + members)
            for c in range(n):
                Ts[b, c] += np.sum(p[sel] == c)
                Ps[b, c] += np.sum(g[sel] == c)
                TPs[b, c] += np.sum((p[sel] == c) & (g[sel] == c))
                BTs[b, c] += np.sum(bpr[sel] == c)
                BPs[b, c] += np.sum(bgt[sel] == c)
                BTPs[b, c] += np.sum((bpr[sel] == c) & (bgt[sel] == c))
    iou = TP / (T + P - TP + 1e-10)
    sizes = [float(np.mean((TPs[b] / (Ts[b] + Ps[b] - TPs[b] + 1e-10))[Ps[b] > 0])) if (Ps[b] > 0).any() else None
             for b in range(4)]
    bsizes = [float(np.mean((BTPs[b] / (BTs[b] + BPs[b] - BTPs[b] + 1e-10))[BPs[b] > 0])) if (BPs[b] > 0).any()
              else None for b in range(4)]
    return {"mIoU": iou.mean(), "FMeasure": f_total / len(pairs), "Acc": acc_total / len(pairs),
            "mBIoU": float(np.mean(bi / (bg_ + bp_ - bi + 1e-10))), "sizes": sizes + bsizes}


def test_vectorised_metrics_match_literal_reference():
    rng = np.random.default_rng(7)
    pairs = []
    for i in range(24):
        gt = blob_gt(rng, 30, 41, list(rng.choice(5, size=rng.integers(1, 3), replace=False) + 1), ignore=i % 3 > 0)
        raw = np.roll(gt, int(rng.integers(-3, 4)), axis=1) % X
        raw = np.where(rng.random(gt.shape) < 0.05, rng.integers(0, 9, size=gt.shape), raw * 3)
        pairs.append((gt, raw))
    match = {0: 0, 3: 1, 6: 2, 9: 3, 12: 4, 15: 5, 1: 2, 2: 0, 7: 4}
    ours = evaluate_arrays(pairs, 5, match)
    ref = reference_metrics(pairs, 5, match)
    for key in ("mIoU", "FMeasure", "Acc", "mBIoU"):
        assert ours[key] == pytest.approx(ref[key], abs=1e-9), key
    for key, value in zip(("S", "MS", "ML", "L", "BS", "BMS", "BML", "BL"), ref["sizes"]):
        assert (ours[key] is None) == (value is None), key
        if value is not None:
            assert ours[key] == pytest.approx(value, abs=1e-9), key


# ----------------------------------------------------------------------------- input errors

def good_set(tmp_path):
    rng = np.random.default_rng(2)
    gts = small_dataset(rng, num_classes=2, per_class=2, h=12, w=16)
    return write_set(tmp_path, {n: (g, g) for n, g in gts.items()})


def test_missing_prediction_is_named(tmp_path):
    pred_dir, gt_dir = good_set(tmp_path)
    os.remove(os.path.join(pred_dir, "n002", "img1.png"))
    with pytest.raises(EvaluationInputError, match=r"1 predictions missing: n002/img1\.png"):
        evaluate_folder(pred_dir, gt_dir, progress=False)


def test_wrong_size_prediction_is_named(tmp_path):
    pred_dir, gt_dir = good_set(tmp_path)
    write_label_png(os.path.join(pred_dir, "n001", "img0.png"), np.zeros((5, 7), np.int32))
    with pytest.raises(EvaluationInputError, match=r"n001/img0\.png \(prediction 5x7, GT 12x16\)"):
        evaluate_folder(pred_dir, gt_dir, progress=False)


def test_stray_files_are_named_but_match_and_method_are_allowed(tmp_path):
    pred_dir, gt_dir = good_set(tmp_path)
    (tmp_path / "pred" / "match.json").write_text('{"0": 0}')
    (tmp_path / "pred" / "method.txt").write_text("demo")
    evaluate_folder(pred_dir, gt_dir, progress=False)  # allowed extras
    write_label_png(os.path.join(pred_dir, "n009", "extra.png"), np.zeros((12, 16), np.int32))
    (tmp_path / "pred" / "n001" / "notes.txt").write_text("x")
    with pytest.raises(EvaluationInputError) as info:
        evaluate_folder(pred_dir, gt_dir, progress=False)
    assert "2 stray files" in str(info.value)
    assert "n009/extra.png" in str(info.value) and "n001/notes.txt" in str(info.value)


def test_many_offenders_are_listed_with_a_count(tmp_path):
    pred_dir, gt_dir = good_set(tmp_path)
    for i in range(13):
        (tmp_path / "pred" / f"junk{i:02d}.txt").write_text("x")
    with pytest.raises(EvaluationInputError, match=r"13 stray files.*\(and 3 more\)"):
        evaluate_folder(pred_dir, gt_dir, progress=False)


def test_truncated_png_is_named(tmp_path):
    pred_dir, gt_dir = good_set(tmp_path)
    path = os.path.join(pred_dir, "n002", "img0.png")
    write_label_png(path, np.random.default_rng(0).integers(0, 3, size=(12, 16)))
    data = open(path, "rb").read()
    with open(path, "wb") as handle:
        handle.write(data[: len(data) // 2 + 20])
    with pytest.raises(EvaluationInputError, match=r"n002/img0\.png"):
        evaluate_folder(pred_dir, gt_dir, progress=False)


def test_malformed_match_json_is_named(tmp_path):
    pred_dir, gt_dir = good_set(tmp_path)
    bad = tmp_path / "bad_match.json"
    bad.write_text('{"0": 0, "1": ')
    with pytest.raises(MatchFileError, match="bad_match.json"):
        load_match(str(bad))
    with pytest.raises(MatchFileError, match="bad_match.json"):
        evaluate_folder(pred_dir, gt_dir, match=str(bad), progress=False)
    bad.write_text('[1, 2]')
    with pytest.raises(MatchFileError, match="bad_match.json.*JSON object"):
        load_match(str(bad))
    bad.write_text('{"one": 1}')
    with pytest.raises(MatchFileError, match="bad_match.json.*'one'"):
        load_match(str(bad))
    with pytest.raises(MatchFileError, match="nowhere.json"):
        load_match(str(tmp_path / "nowhere.json"))


def test_gt_ids_above_the_category_count_are_reported(tmp_path):
    pred_dir, gt_dir = good_set(tmp_path)
    with pytest.raises(EvaluationInputError, match="above K=1"):
        evaluate_folder(pred_dir, gt_dir, categories=["only_one"], progress=False)


def test_match_json_round_trip_uses_string_keys(tmp_path):
    path = str(tmp_path / "m" / "match.json")
    save_match(path, {0: 0, 12: 3, 4: 0})
    raw = json.loads(open(path).read())
    assert raw == {"0": 0, "4": 0, "12": 3}
    assert load_match(path) == {0: 0, 4: 0, 12: 3}


# ----------------------------------------------------------------------------- command line

def toy_root(tmp_path):
    """An ImageNet-S-like root with validation-segmentation/ and categories.txt, and a matching pred dir."""
    rng = np.random.default_rng(5)
    gts = small_dataset(rng, num_classes=3, per_class=2, h=16, w=20)
    root = tmp_path / "data"
    for name, gt in gts.items():
        write_label_png(str(root / "validation-segmentation" / name), gt)
        write_label_png(str(tmp_path / "pred" / name), np.where(gt == X, 0, gt))
    (root / "categories.txt").write_text("n001\nn002\nn003\n")
    return root, tmp_path / "pred"


def test_cli_evaluates_with_data_root_and_writes_json(tmp_path, capsys):
    root, pred = toy_root(tmp_path)
    out = tmp_path / "res" / "result.json"
    code = evaluate_main(["--data", str(root), "--split", "validation", "--pred", str(pred), "--match", "auto",
                          "--save-match", str(tmp_path / "m.json"), "--out", str(out), "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "mIoU" in printed and "100.00" in printed and "n003" in printed
    saved = json.loads(out.read_text())
    assert saved["mIoU"] == pytest.approx(1.0) and saved["classes"] == ["background", "n001", "n002", "n003"]
    assert saved["match"] == {"0": 0, "1": 1, "2": 2, "3": 3}
    assert load_match(str(tmp_path / "m.json")) == {0: 0, 1: 1, 2: 2, 3: 3}


def test_cli_bad_input_is_one_line_exit_2(tmp_path, capsys):
    root, pred = toy_root(tmp_path)
    os.remove(str(pred / "n001" / "img0.png"))
    code = evaluate_main(["--data", str(root), "--pred", str(pred), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and "n001/img0.png" in err
    (pred / "n001" / "img0.png").write_bytes(b"")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    code = evaluate_main(["--gt", str(root / "validation-segmentation"), "--pred", str(pred),
                          "--match", str(bad), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "bad.json" in err


def test_cli_module_exit_status(tmp_path, project_root):
    root, pred = toy_root(tmp_path)
    env = dict(os.environ, PYTHONPATH=os.path.join(project_root, "src"))
    ok = subprocess.run([sys.executable, "-m", "uss.evaluation", "--data", str(root), "--pred", str(pred), "--quiet",
                         "--no-per-class"], capture_output=True, text=True, env=env, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "summary" in ok.stdout
    missing = subprocess.run([sys.executable, "-m", "uss.evaluation", "--gt", str(tmp_path / "nope"), "--pred",
                              str(pred)], capture_output=True, text=True, env=env, timeout=120)
    assert missing.returncode == 2
    assert missing.stderr.strip().count("\n") == 0 and "nope" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_demo_results_reads_evaluator_and_test_py_results(tmp_path):
    from uss.demo_results import format_results

    plain, test_py, empty = tmp_path / "plain", tmp_path / "test_py", tmp_path / "empty"
    for folder in (plain, test_py, empty):
        folder.mkdir()
    (plain / "validation.json").write_text(json.dumps({"mIoU": 0.25, "FMeasure": 0.5}))
    (plain / "test.json").write_text(json.dumps({"mIoU": 0.125, "FMeasure": 0.375}))
    (test_py / "validation_result.json").write_text(json.dumps({"mIoU": 0.6, "FMeasure": 0.7}))
    table = format_results([("a", str(plain)), ("b", str(test_py)), ("c", str(empty))]).splitlines()
    assert table[2] == "| a | 25.00 | 12.50 | 50.00 | 37.50 |"
    assert table[3] == "| b | 60.00 | - | 70.00 | - |"
    assert table[4] == "| c | - | - | - | - |"
