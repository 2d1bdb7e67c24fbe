"""The toy ImageNet-S generator: determinism, layout, class-typical colours that do not solve the task (the
natural palette) or colours independent of the class (the random palette), reuse and refusal."""
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from uss.data import layout
from uss.data.label_png import IGNORE, read_label_png
from uss.data.toy import ToyDatasetError, generate

SMALL = dict(classes=10, size=64, train_per_class=2, val_per_class=2, test_per_class=1, progress=False)


def _tree(root):
    """Relative path -> bytes of every file under root."""
    files = {}
    for directory, _, names in os.walk(root):
        for name in names:
            path = os.path.join(directory, name)
            with open(path, "rb") as handle:
                files[os.path.relpath(path, root)] = handle.read()
    return files


def _stats_dataset(tmp_path_factory, palette):
    """Enough validation/test images (20 a class) for the statistical checks."""
    root = str(tmp_path_factory.mktemp(f"toy_stats_{palette}") / "toy")
    generate(root, seed=3, classes=10, size=64, train_per_class=1, val_per_class=10, test_per_class=10,
             palette=palette, progress=False)
    return root


@pytest.fixture(scope="module")
def stats_dataset(tmp_path_factory):
    return _stats_dataset(tmp_path_factory, "natural")


@pytest.fixture(scope="module")
def random_palette_dataset(tmp_path_factory):
    return _stats_dataset(tmp_path_factory, "random")


def test_same_seed_gives_identical_bytes_and_other_seed_differs(tmp_path):
    first, second, other = (str(tmp_path / name) for name in ("a", "b", "c"))
    generate(first, seed=0, **SMALL)
    generate(second, seed=0, **SMALL)
    generate(other, seed=1, **SMALL)
    tree_a, tree_b, tree_c = _tree(first), _tree(second), _tree(other)
    assert tree_a.keys() == tree_b.keys()
    assert all(tree_a[name] == tree_b[name] for name in tree_a), "same seed must give byte-identical files"
    assert not any(name.endswith(".tmp") or "incomplete" in name for name in tree_a)
    images = [name for name in tree_a if name.endswith(".JPEG")]
    assert sum(tree_a[name] != tree_c.get(name) for name in images) > 0.9 * len(images)


def test_layout(tmp_path):
    root = str(tmp_path / "toy")
    summary = generate(root, seed=0, **SMALL)
    categories = layout.load_categories(root)
    assert categories == summary["categories"] and len(categories) == 10
    assert categories == sorted(categories) and all(len(c) == 9 and c.startswith("n") for c in categories)
    with open(os.path.join(root, "categories.txt")) as handle:
        assert len(handle.read().splitlines()) == 10
    assert not os.path.exists(layout.segmentation_dir(root, "train"))
    expected = {"train": 2 * 10, "validation": 2 * 10, "test": 1 * 10}
    for split, count in expected.items():
        names = layout.list_images(root, split)
        assert len(names) == count == summary["images"][split]
        with open(os.path.join(root, "names", f"{split}.txt")) as handle:
            listed = handle.read().splitlines()
        assert listed == sorted(listed) == names
        walked = sorted(os.path.relpath(os.path.join(d, f), layout.image_dir(root, split)).replace(os.sep, "/")
                        for d, _, files in os.walk(layout.image_dir(root, split)) for f in files)
        assert walked == names
        for name in names:
            folder, file = name.split("/")
            assert layout.class_of(name, categories) is not None
            if split == "train":
                assert (file.startswith(folder + "_") and file.endswith(".JPEG")
                        and len(file) == len("n00000001_00000001.JPEG"))
            else:
                assert file.startswith("ILSVRC2012_val_") and len(file) == len("ILSVRC2012_val_00000001.JPEG")
            with Image.open(os.path.join(layout.image_dir(root, split), name)) as image:
                assert image.format == "JPEG" and image.mode == "RGB" and image.size == (64, 64)
            if split != "train":
                label = read_label_png(os.path.join(layout.segmentation_dir(root, split), layout.label_name(name)))
                assert label.shape == (64, 64)
                assert set(np.unique(label).tolist()) <= set(range(11)) | {IGNORE}
                assert layout.class_of(name, categories) in np.unique(label)  # the folder's class is present
    val_test = [n for split in ("validation", "test") for n in layout.list_images(root, split)]
    assert len(set(n.split("/")[1] for n in val_test)) == len(val_test), "val/test image names must be unique"


def _objects(root):
    """(class id, mean RGB, area fraction, image key) of every labelled object in validation + test."""
    objects = []
    for split in ("validation", "test"):
        for name in layout.list_images(root, split):
            image = np.asarray(Image.open(os.path.join(layout.image_dir(root, split), name)), dtype=np.float64)
            label = read_label_png(os.path.join(layout.segmentation_dir(root, split), layout.label_name(name)))
            for cls in np.unique(label):
                if cls in (0, IGNORE):
                    continue
                mask = label == cls
                objects.append((int(cls), image[mask].mean(axis=0), mask.mean(), (split, name)))
    return objects


def _colour_accuracy(root):
    """Accuracy of nearest-class-mean-colour classification of the objects, averaged over random halves."""
    objects = _objects(root)
    classes = np.array([o[0] for o in objects])
    colours = np.stack([o[1] for o in objects])
    rng = np.random.default_rng(0)
    accuracies = []
    for _ in range(5):  # average over random halves to keep the estimate stable
        fit = rng.random(len(objects)) < 0.5
        centroids = {c: colours[fit & (classes == c)].mean(axis=0) for c in np.unique(classes[fit])}
        ids = np.array(list(centroids))
        table = np.stack([centroids[c] for c in ids])
        nearest = ids[np.argmin(((colours[~fit, None, :] - table[None]) ** 2).sum(-1), axis=1)]
        accuracies.append(float((nearest == classes[~fit]).mean()))
    return float(np.mean(accuracies))


def test_random_palette_class_is_not_recoverable_from_colour(random_palette_dataset):
    accuracy = _colour_accuracy(random_palette_dataset)
    assert accuracy < 0.25, f"colour predicts the class too well: {accuracy}"


def test_natural_palette_colour_helps_but_does_not_solve_the_task(stats_dataset):
    from uss.evaluation.feature_nmi import hue_histograms, kmeans_nmi, load_split

    accuracy = _colour_accuracy(stats_dataset)
    assert 0.25 < accuracy < 0.75, f"object mean colour gives the class with accuracy {accuracy}"
    images, classes = [], []
    for split in ("validation", "test"):
        split_images, split_classes = load_split(stats_dataset, split)
        images += split_images
        classes.append(split_classes)
    nmi = kmeans_nmi(hue_histograms(images), np.concatenate(classes))
    assert 0.1 < nmi <= 0.5, f"k-means on whole-image hue histograms: NMI {nmi:.3f}"


def test_object_sizes_span_and_two_class_images(stats_dataset):
    objects = _objects(stats_dataset)
    per_image = {}
    for _, _, area, key in objects:
        per_image.setdefault(key, []).append(area)
    areas = np.array([o[2] for o in objects])
    assert areas.min() < 0.12 and areas.max() > 0.40, (areas.min(), areas.max())
    assert np.percentile(areas, 10) < 0.15 and np.percentile(areas, 90) > 0.25
    two = sum(len(areas) > 1 for areas in per_image.values())
    assert 0.1 * len(per_image) < two < 0.45 * len(per_image), f"{two} of {len(per_image)} images hold two classes"


def test_refuses_foreign_non_empty_folder(tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me\n")
    with pytest.raises(ToyDatasetError) as error:
        generate(str(foreign), **SMALL)
    assert "\n" not in str(error.value) and "not empty" in str(error.value)
    assert sorted(os.listdir(foreign)) == ["notes.txt"]
    run = subprocess.run([sys.executable, "-m", "uss.data.toy", "--out", str(foreign), "--no-progress"],
                         capture_output=True, text=True)
    assert run.returncode == 2
    assert len(run.stderr.strip().splitlines()) == 1 and "not empty" in run.stderr
    assert sorted(os.listdir(foreign)) == ["notes.txt"]


def test_rerun_is_fast_noop_and_other_parameters_rebuild(tmp_path, capsys):
    root = str(tmp_path / "toy")
    first = generate(root, seed=0, **SMALL)
    before = {name: os.stat(os.path.join(root, name)).st_mtime_ns for name in _tree(root)}
    contents = _tree(root)
    capsys.readouterr()
    start = time.time()
    again = generate(root, seed=0, **SMALL)
    assert time.time() - start < 1.0
    assert again == first and "reusing" in capsys.readouterr().out
    assert {name: os.stat(os.path.join(root, name)).st_mtime_ns for name in _tree(root)} == before
    # Different parameters rebuild in place (no stale files from the earlier dataset).
    fewer = dict(SMALL, classes=3)
    generate(root, seed=0, **fewer)
    assert layout.load_categories(root) == ["n00000001", "n00000002", "n00000003"]
    assert sorted(os.listdir(layout.image_dir(root, "train"))) == ["n00000001", "n00000002", "n00000003"]
    # An interrupted run (no toy.json, marker present) is rebuilt, not refused.
    os.unlink(os.path.join(root, "toy.json"))
    open(os.path.join(root, ".toy-incomplete"), "w").close()
    generate(root, seed=0, **SMALL)
    assert _tree(root) == contents


def test_oracle_train_masks_match_the_images_and_stay_outside(tmp_path):
    """The true train masks (ceiling rows only) are the generator's own labels of the same renders, written outside
    the dataset; a rerun keeps them, and the dataset itself holds no train segmentation."""
    from uss.data.label_png import read_label_png

    data, masks = str(tmp_path / "toy"), str(tmp_path / "masks")
    summary = generate(data, classes=3, size=48, train_per_class=2, val_per_class=1, test_per_class=1,
                       oracle_masks=masks, progress=False)
    names = [line.strip() for line in open(os.path.join(data, "names", "train.txt"))]
    assert len(names) == summary["images"]["train"] == 6
    assert not os.path.exists(os.path.join(data, "train-segmentation"))
    for name in names:
        label = read_label_png(os.path.join(masks, name[:-len(".JPEG")] + ".png"))
        assert label.shape == (48, 48)
        main_class = int(name.split("/")[0][1:])
        assert (label == main_class).sum() > 0  # the folder's class is drawn in its mask
        assert set(np.unique(label)) <= set(range(4)) | {1000}
    before = os.path.getmtime(os.path.join(masks, names[0][:-len(".JPEG")] + ".png"))
    generate(data, classes=3, size=48, train_per_class=2, val_per_class=1, test_per_class=1, oracle_masks=masks,
             progress=False)
    assert os.path.getmtime(os.path.join(masks, names[0][:-len(".JPEG")] + ".png")) == before
