"""The label-free background threshold: Otsu's split and the border prior on synthetic attention with a known
foreground, and the stage writing a threshold.json that generation then applies."""
import json
import os

import numpy as np
import pytest

from uss.data.split import ImageNetSSplit
from uss.data.toy import generate as make_toy
from uss.errors import InputError
from uss.labeling import label_free
from uss.labeling.threshold import ABOVE, BELOW, PER_IMAGE, RAW, describe_choice, load_threshold, scale_attention


def test_otsu_splits_two_populations_in_their_gap():
    rng = np.random.default_rng(0)
    low, high = rng.normal(0.30, 0.03, 7000), rng.normal(0.62, 0.03, 3000)
    threshold = label_free.otsu_threshold(np.concatenate([low, high]))
    assert 0.36 < threshold < 0.56  # Otsu leans towards the larger population; the gap is 0.39-0.53
    # Misclassified share, against the known populations: Otsu's split leaves almost none.
    wrong = (low > threshold).sum() + (high <= threshold).sum()
    assert wrong / 10000 < 0.002


def test_otsu_weights_count_as_repetitions():
    values = np.array([0.1, 0.2, 0.8, 0.9, 0.5])
    weights = np.array([3, 1, 2, 2, 4], float)
    assert label_free.otsu_threshold(values, weights) == pytest.approx(
        label_free.otsu_threshold(np.repeat(values, weights.astype(int))))
    assert label_free.otsu_threshold(np.full(10, 0.4)) == 0.4


def blob_attention(size: int, centre_high: bool, rng) -> np.ndarray:
    """An object in the middle (a disc of 30 % radius) on a background, with noise; high or low inside."""
    yy, xx = np.mgrid[:size, :size]
    cy, cx = size / 2 + rng.integers(-4, 5), size / 2 + rng.integers(-4, 5)
    inside = (yy - cy) ** 2 + (xx - cx) ** 2 < (0.3 * size) ** 2
    values = np.where(inside, 0.56, 0.48) if centre_high else np.where(inside, 0.48, 0.56)
    return (values + rng.normal(0, 0.01, (size, size))).astype(np.float32), inside


@pytest.mark.parametrize("centre_high, expected", [(True, BELOW), (False, ABOVE)])
def test_border_prior_finds_which_side_is_background(centre_high, expected):
    rng = np.random.default_rng(1)
    maps = [blob_attention(48, centre_high, rng) for _ in range(6)]
    threshold = label_free.otsu_threshold(np.concatenate([m.ravel() for m, _ in maps]))
    side, border_above, interior_above = label_free.border_side([label_free.above_shares(m, threshold)
                                                                 for m, _ in maps])
    assert side == expected
    assert (border_above < interior_above) == centre_high
    for attention, inside in maps:
        background = attention < threshold if side == BELOW else attention > threshold
        assert (background == ~inside).mean() > 0.99  # the known split, recovered


def test_standardising_each_image_removes_its_attention_level():
    # Images whose attention level differs by more than their object/background contrast: no one threshold on the
    # raw values splits them all, one threshold on the per-image standardised values does.
    rng = np.random.default_rng(3)
    maps = []
    for offset in np.linspace(-0.06, 0.06, 8):
        attention, inside = blob_attention(48, True, rng)
        maps.append((attention + offset, inside))
    for scale, best_error in ((RAW, 0.1), (PER_IMAGE, 0.01)):
        values = [scale_attention(m, scale) for m, _ in maps]
        threshold = label_free.otsu_threshold(np.concatenate([v.ravel() for v in values]))
        error = np.mean([((v > threshold) != inside).mean() for v, (_, inside) in zip(values, maps)])
        assert (error > best_error) if scale == RAW else (error < best_error)
    assert np.allclose(scale_attention(np.full((4, 4), 0.5, np.float32), PER_IMAGE), 0)


def test_choose_writes_a_threshold_file_that_describes_itself(tmp_path):
    data = str(tmp_path / "toy")
    make_toy(data, classes=2, size=48, train_per_class=3, val_per_class=1, test_per_class=1, progress=False)
    split = ImageNetSSplit(data, "train")
    rng = np.random.default_rng(2)
    # Stand-in attention, a function of nothing the split holds: the choice must come from these values alone.
    chosen = label_free.choose(lambda image: label_free.pixel_values(blob_attention(48, False, rng)[0]), split,
                               str(tmp_path / "out"))
    written = json.load(open(tmp_path / "out" / "threshold.json"))
    assert written == chosen
    assert written["background"] == ABOVE and written["side_from"] == "border prior"
    assert 0.49 < written["threshold"] < 0.55 and written["mIoU"] is None and written["images"] == len(split)
    assert written["attention"] == PER_IMAGE
    assert os.path.getsize(tmp_path / "out" / "threshold_histogram.png") > 1000
    assert "label-free" in describe_choice(str(tmp_path / "out" / "threshold.json"))
    # A standardised threshold may be negative; a raw one must lie in [0, 1].
    path = tmp_path / "out" / "threshold.json"
    path.write_text(json.dumps({**written, "threshold": -0.4}))
    assert load_threshold(str(path)) == -0.4
    path.write_text(json.dumps({**written, "threshold": -0.4, "attention": RAW}))
    with pytest.raises(InputError, match="in \\[0, 1\\]"):
        load_threshold(str(path))
    # A given side is kept (the mask labels reuse the per-pixel one); the border prior is not consulted then.
    masks = [np.eye(4, dtype=bool), ~np.eye(4, dtype=bool)]
    kept = label_free.choose(lambda image: label_free.mask_values(masks, np.array([0.2, 0.7])), split,
                             str(tmp_path / "masks"), "mask", side=BELOW)
    assert kept["background"] == BELOW and kept["side_from"] == "given"
    assert 0.2 < kept["threshold"] <= 0.7


def test_small_map_keeps_the_values_of_a_large_image():
    attention = np.zeros((1200, 900), np.float32)
    attention[:, 450:] = 1.0
    small = label_free.small_map(attention)
    assert min(small.shape) == label_free.MAP_SHORT_SIDE
    assert small.mean() == pytest.approx(0.5, abs=0.01)
    assert label_free.small_map(attention[:60, :80]).shape == (60, 80)
