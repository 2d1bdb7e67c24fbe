"""The prediction gallery: pages that reference only files that exist, every image shown once with its prediction
and ground truth, per-image IoU computed right, and the per-id strips pointing at the images each id covers most."""
import os
import re

import numpy as np
import pytest

from uss.data import layout
from uss.data.label_png import IGNORE, write_label_png
from uss.data.split import ImageNetSSplit
from uss.data.toy import generate as make_toy
from uss.gallery import build_gallery, check_in_browser, image_iou
from uss.gallery import main as gallery_main


def test_image_iou_by_hand():
    gt = np.array([[0, 0, 1, 1], [0, 0, 1, IGNORE]])
    pred = np.array([[0, 1, 1, 1], [0, 0, 0, 2]])
    # The ignored pixel is left out (and with it the only 2). Background: 3 pixels in both, 5 in either = 0.6;
    # class 1: 2 in both, 4 in either = 0.5.
    assert image_iou(gt, pred) == pytest.approx((0.6 + 0.5) / 2)


@pytest.fixture(scope="module")
def predicted(tmp_path_factory):
    """A toy validation split and predictions: the true labels with class ids shifted by 10 (cluster ids), so
    the match {k+10: k} makes them perfect."""
    from uss.data.label_png import read_label_png

    base = tmp_path_factory.mktemp("gallery")
    data, pred = str(base / "toy"), str(base / "pred")
    make_toy(data, classes=3, size=48, train_per_class=1, val_per_class=5, test_per_class=1, progress=False)
    split = ImageNetSSplit(data, "validation")
    for name in split.names:
        label = read_label_png(split.label_path(name))
        write_label_png(os.path.join(pred, layout.label_name(name)),
                        np.where((label > 0) & (label != IGNORE), label + 10, np.where(label == IGNORE, 0, label)))
    return split, pred


def _references(page: str) -> list:
    with open(page) as handle:
        return re.findall(r"(?:src|href)='([^']+)'", handle.read())


def test_gallery_pages_reference_existing_files_and_show_every_image(predicted, tmp_path):
    split, pred = predicted
    out = str(tmp_path / "gallery")
    pages = build_gallery(split, pred, out, match={11: 1, 12: 2, 13: 3}, per_page=4, progress=False)
    assert len(pages) == -(-len(split) // 4) > 1
    assert [os.path.basename(p) for p in pages] == \
        ["index.html"] + [f"page-{p:04d}.html" for p in range(2, len(pages) + 1)]
    shown = []
    for page in pages:
        for reference in _references(page):
            target = reference.split("#")[0]
            assert target == "" or os.path.isfile(os.path.join(out, target)), (page, reference)
        with open(page) as handle:
            text = handle.read()
        shown += re.findall(r"<figure id='i(\d+)'>", text)
        assert "<html>" in text and "</html>" in text
    assert sorted(shown) == [f"{i:06d}" for i in range(len(split))]  # every image once
    with open(pages[0]) as handle:
        index = handle.read()
    assert "mean per-image IoU 100.0 (after the match)" in index  # perfect after the match, ignore band skipped
    assert all(f"> {cluster}</td>" in index for cluster in (11, 12, 13))
    assert not [f for f in os.listdir(out) if f.endswith(".tmp")]


def test_gallery_strip_links_to_the_page_of_the_image(predicted, tmp_path, capsys):
    split, pred = predicted
    out = str(tmp_path / "gallery")
    gallery_main(["--data", split.root, "--split", "validation", "--pred", pred, "--out", out, "--per-page", "2"])
    assert "index.html" in capsys.readouterr().out
    with open(os.path.join(out, "index.html")) as handle:
        links = re.findall(r"<a href='([^']+)#i(\d+)'>", handle.read())
    assert links
    for page, stem in links:
        assert page == ("index.html" if int(stem) // 2 == 0 else f"page-{int(stem) // 2 + 1:04d}.html")
        with open(os.path.join(out, page)) as handle:
            assert f"<figure id='i{stem}'>" in handle.read()


def test_gallery_loads_in_headless_chromium_with_no_broken_image(predicted, tmp_path):
    # run_tests.sh installs Debian's chromium when it is missing, so this runs in CI rather than skipping;
    # USS_SKIP_BROWSER=1 skips it explicitly.
    if os.environ.get("USS_SKIP_BROWSER") == "1":
        pytest.skip("USS_SKIP_BROWSER=1")
    split, pred = predicted
    out = str(tmp_path / "gallery")
    pages = build_gallery(split, pred, out, match={11: 1, 12: 2, 13: 3}, per_page=8, progress=False)
    for page in pages:
        state = check_in_browser(page)
        assert state["broken"] == [] and state["images"] > 0 and state["text"] > 100, (page, state)
    # The check can fail: a thumbnail cut short is an image the browser cannot decode.
    thumb = os.path.join(out, "thumbs", sorted(os.listdir(os.path.join(out, "thumbs")))[0])
    with open(thumb, "r+b") as handle:
        handle.truncate(20)
    broken = [check_in_browser(page)["broken"] for page in pages]
    assert [b for page_broken in broken for b in page_broken if b.endswith(os.path.basename(thumb))]
