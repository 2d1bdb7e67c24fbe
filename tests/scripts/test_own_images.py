"""Your own images: a plain nested folder (mixed formats, a corrupt file, a grayscale and a large image, no labels
anywhere) through train_1.sh .. train_4.sh with PRESET=small at a tiny size, and the layout rules it relies on."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.helpers import ROOT
from uss.data import layout
from uss.data.label_png import read_label_png
from uss.data.split import ImageNetSSplit
from uss.data.toy import generate as make_toy

FORMATS = ["jpg", "png", "webp", "bmp", "tif", "jpeg"]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A flat-and-nested folder of 15 demo images in six formats, one of them grayscale and one 1600 x 1200, plus a
    corrupt .jpg, a non-image file and a hidden file; no labels, no split folders."""
    root = tmp_path_factory.mktemp("own")
    toy = str(root / "toy")
    make_toy(toy, classes=3, size=64, train_per_class=5, val_per_class=1, test_per_class=1, progress=False)
    sources = ImageNetSSplit(toy, "train")
    folder = root / "photos"
    for index in range(len(sources)):
        image = Image.fromarray(sources.load(index).image)
        where = folder / ("" if index < 5 else "holiday/day 2" if index < 10 else "misc")
        where.mkdir(parents=True, exist_ok=True)
        if index == 3:
            image = image.convert("L")
        if index == 7:
            image = image.resize((1600, 1200), Image.BILINEAR)
        image.save(where / f"img_{index:02d}.{FORMATS[index % len(FORMATS)]}")
    (folder / "misc" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (folder / "notes.txt").write_text("not an image")
    (folder / ".hidden.png").write_bytes(b"")
    return {"folder": str(folder), "root": root, "count": len(sources)}


def test_a_plain_folder_is_one_split_of_every_image(photos):
    folder = photos["folder"]
    assert layout.is_plain_folder(folder)
    names = layout.list_images(folder, "train")
    assert len(names) == photos["count"] + 1  # the corrupt file is an image by name; reading it reports it
    assert "holiday/day 2/img_05.jpeg" in names and "notes.txt" not in names and ".hidden.png" not in names
    assert ImageNetSSplit(folder, "all").names == names
    assert ImageNetSSplit(folder, "all").image_path(names[0]) == os.path.join(folder, names[0])
    with pytest.raises(layout.DatasetNotFoundError, match="--num-classes"):
        layout.load_categories(folder)
    assert not layout.is_plain_folder(os.path.dirname(folder) + "/toy")  # the ImageNet-S layout is not plain


def test_two_images_with_one_label_name_keep_the_first(tmp_path, capsys):
    Image.new("RGB", (8, 8)).save(tmp_path / "a.jpg")
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    assert layout.list_images(str(tmp_path), "train") == ["a.jpg"]
    assert "a.png: skipped" in capsys.readouterr().err


def run_stage(script, photos, runs, **extra):
    env = {**os.environ, "DATA": photos["folder"], "CLASSES": "3", "PRESET": "small", "RUNS": str(runs),
           "PY": sys.executable, **extra}
    done = subprocess.run(["bash", os.path.join(ROOT, script)], capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, f"{script} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


@pytest.mark.slow  # all four stage scripts
def test_own_images_through_all_four_stages(photos):
    """The README's own-images commands, each stage cut to one epoch of batch 4."""
    runs = photos["root"] / "runs"
    tiny = "--epochs 1 --batch-size 4"
    log = run_stage("train_1.sh", photos, runs, PRETRAIN_EXTRA=tiny)
    assert "broken.jpg" in log  # reported by name ...
    copy = str(runs / "images_small")
    assert len(layout.list_images(copy, "train")) == photos["count"]  # ... and left out of the scaled copy
    assert max(min(Image.open(os.path.join(copy, n)).size) for n in layout.list_images(copy, "train")) <= 96
    run_stage("train_2.sh", photos, runs, ATTENTION_EXTRA=tiny)
    chosen = json.load(open(runs / "r18" / "cluster" / "threshold.json"))
    assert chosen["method"].startswith("label-free") and chosen["split"] == "train"  # no labels to sweep on
    assert np.load(runs / "r18" / "cluster" / "centroids.npy").shape[0] == 3  # CLASSES
    log = run_stage("train_3.sh", photos, runs, CRF="pseudo")
    assert "mask pseudo labels (train) + dense CRF" in log  # CRF=pseudo reaches the label generator
    labels = layout.relative_files(str(runs / "r18" / "pseudo_labels_mask"))
    assert len(labels) == photos["count"]
    log = run_stage("train_4.sh", photos, runs, FINETUNE_EXTRA=tiny)
    assert "broken.jpg" in log
    predictions = runs / "test_py" / "all"
    for name in layout.list_images(photos["folder"], "all"):
        path = predictions / layout.label_name(name)
        if name.endswith("broken.jpg"):
            assert not path.exists()
            continue
        prediction = read_label_png(str(path))
        original = Image.open(os.path.join(photos["folder"], name))
        assert prediction.shape == (original.height, original.width)  # the originals, at full size
        assert prediction.max() <= 3
    assert not (runs / "test_py" / "all" / "match.json").exists()  # no labels: the model's own ids
    page = open(runs / "gallery" / "index.html").read()
    thumbs = set(os.listdir(runs / "gallery" / "thumbs"))
    assert sum(f.endswith("_pred.png") for f in thumbs) == photos["count"]
    assert "broken.jpg" in page and "1 image(s) not shown" in page
