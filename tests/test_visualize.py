"""Palette, colourised labels and overlays."""
import numpy as np
import pytest

from uss.data.label_png import IGNORE
from uss.visualize import colorize, ignore_color, overlay, palette


def test_palette_deterministic_and_distinct():
    colors = palette(1001)
    assert colors.shape == (1001, 3) and colors.dtype == np.uint8
    assert np.array_equal(colors, palette(1001))
    assert np.array_equal(palette(20), colors[:20])  # a prefix does not depend on n
    assert colors[0].tolist() == [0, 0, 0]
    assert len({tuple(c) for c in colors.tolist()}) == 1001
    assert tuple(ignore_color()) not in {tuple(c) for c in colors.tolist()}
    assert palette(0).shape == (0, 3)


def test_colorize_background_black_ignore_white():
    label = np.array([[0, 1, 2], [IGNORE, 2, 0]])
    rgb = colorize(label)
    colors = palette(3)
    assert rgb.shape == (2, 3, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0].tolist() == [0, 0, 0]
    assert rgb[1, 0].tolist() == list(ignore_color())
    assert rgb[0, 1].tolist() == colors[1].tolist() and rgb[1, 1].tolist() == colors[2].tolist()


def test_overlay_keeps_background_and_blends_classes():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(8, 9, 3), dtype=np.uint8)
    label = np.zeros((8, 9), np.int32)
    label[2:6, 2:7] = 3
    label[0, 0] = IGNORE
    out = overlay(image, label, alpha=0.5)
    assert out.dtype == np.uint8 and out.shape == image.shape
    background = label == 0
    assert np.array_equal(out[background], image[background])
    expected = np.rint(0.5 * image[3, 3].astype(float) + 0.5 * palette(4)[3].astype(float))
    assert out[3, 3].tolist() == expected.astype(int).tolist()
    assert (out[0, 0].astype(int) >= image[0, 0].astype(int)).all()  # ignore goes towards white
    assert np.array_equal(overlay(image, label, alpha=0.0), image)
    outlined = overlay(image, label, alpha=0.5, contours=True)
    assert np.array_equal(outlined[background], image[background])
    assert outlined[2, 2].tolist() == palette(4)[3].tolist()  # region edge in full colour
    assert outlined[3, 3].tolist() == out[3, 3].tolist()  # interior stays blended


def test_overlay_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="differ in size"):
        overlay(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5), np.int32))


def test_chart_titles_fit_the_canvas():
    """A threshold sweep's long title (as train_2.sh writes it) shrinks to fit instead of running off the right edge."""
    from uss.plots import bar_chart, line_chart

    title = ("per-pixel labels, validation: best 0.293, background below (mIoU 20.13), "
             "attention standardised per image")
    for chart in (line_chart([0, 1, 2], {"mIoU": [0.1, 0.3, 0.2]}, title, "threshold", "score"),
                  bar_chart(["a", "b"], [0.5, 0.2], title)):
        band = chart[:32]  # the title's rows
        assert (band[:, -6:] == 255).all()  # nothing drawn at the right edge
        assert (band[:, : chart.shape[1] // 2] < 128).any()  # the title is there
