"""PASS pixel-level fine-tuning and inference: paired transform, masked cross-entropy, training, resume,
inference at original sizes (large images included), resumable prediction folders."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import uss  # noqa: F401  (jittor environment first)
from uss.data import class_balance, layout
from uss.data.label_png import IGNORE, read_label_png, write_label_png
from uss.data.label_dataset import (PseudoLabelDataset, PseudoLabelError, check_label_ids, paired_crop_flip,
                                    resize_nearest, training_pair)
from uss.data.split import ImageNetSSplit
from uss.data.toy import generate
from uss.losses.segmentation import masked_cross_entropy, segmentation_loss
from uss.models import build_model
from uss.checkpoints.trained import load_finetuned, load_pretrained_backbone
from uss.models.segmentation import build_segmentation_model
from uss.prediction import enlarge_nearest, inference_size, predict_split, upsample_argmax
from uss.stages import finetune, inference
from uss.checkpoints.native import CheckpointError, load_checkpoint, save_checkpoint, swap_backbone

import jittor as jt

jt.flags.use_cuda = jt.has_cuda

K = 3
BIG = (1000, 1200)  # height, width of the extra validation image: 1.2 MP, above the 1000 x 1000 rule


def _colour(ids: np.ndarray) -> np.ndarray:
    """A distinct RGB colour per id (0..K and the ignore id)."""
    ids = np.where(ids == IGNORE, K + 1, ids)
    return np.stack([ids * 50 + 20, 230 - ids * 40, (ids * 97) % 256], axis=-1).astype(np.uint8)


def _interior(label: np.ndarray, margin: int = 2) -> np.ndarray:
    """Pixels whose (2 margin + 1)^2 neighbourhood holds one label value and lies inside the map (an edge just
    outside a crop can blend into its border pixels)."""
    padded = np.pad(label, margin, constant_values=-1)
    same = np.ones(label.shape, bool)
    for dy in range(2 * margin + 1):
        for dx in range(2 * margin + 1):
            same &= padded[dy:dy + label.shape[0], dx:dx + label.shape[1]] == label
    return same


def _pseudo_label(height: int, width: int, class_id: int) -> np.ndarray:
    """Background with a centred square of the folder's class and an ignored top row."""
    label = np.zeros((height, width), np.int32)
    label[height // 4: 3 * height // 4, width // 4: 3 * width // 4] = class_id
    label[0, :] = IGNORE
    return label


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """Toy dataset (3 classes, 64 px) + a 1000x1200 validation image with GT, synthetic pseudo labels at half
    resolution, a pretraining checkpoint, and a 2-epoch fine-tuning run."""
    base = tmp_path_factory.mktemp("finetune")
    root = str(base / "toy")
    generate(root, classes=K, size=64, train_per_class=6, val_per_class=2, test_per_class=2, progress=False)
    categories = layout.load_categories(root)
    big_name = f"{categories[0]}/ILSVRC2012_val_99999999.JPEG"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, BIG + (3,), dtype=np.uint8)).save(os.path.join(root, "validation", big_name))
    write_label_png(os.path.join(layout.segmentation_dir(root, "validation"), layout.label_name(big_name)),
                    _pseudo_label(*BIG, 1))
    with open(os.path.join(root, "names", "validation.txt"), "a") as handle:
        handle.write(big_name + "\n")
    labels = str(base / "pseudo")
    for name in ImageNetSSplit(root, "train").names:  # half-size labels: resized to the image by the dataset
        write_label_png(os.path.join(labels, layout.label_name(name)),
                        _pseudo_label(32, 32, categories.index(name.split("/")[0]) + 1))
    pretrained = str(base / "pretrain.pth.tar")
    save_checkpoint(pretrained, {"epoch": 1, "state_dict": build_model("resnet18", "pretrain", n_prototypes=10)
                                 .state_dict(), "args": {"arch": "resnet18"}})
    dump = str(base / "dump")
    argv = ["--data", root, "--pseudo-labels", labels, "--pretrained", pretrained, "--dump-path", dump,
            "--arch", "resnet18", "--epochs", "2", "--batch-size", "4", "--crop-size", "64", "--base-lr", "0.02",
            "--workers", "0"]
    finetune.main(argv)
    return {"root": root, "labels": labels, "pretrained": pretrained, "dump": dump, "argv": argv,
            "big_name": big_name, "base": base}


# ------------------------------------------------------------------------------------ (a) transforms


def test_paired_crop_flip_keeps_image_and_label_aligned():
    rng = np.random.default_rng(1)
    blocks = rng.integers(0, K + 1, size=(8, 6))
    blocks[0, 0] = IGNORE
    label = np.kron(blocks, np.ones((32, 32), dtype=np.int64)).astype(np.int32)  # 256 x 192, 32 px blocks
    image = _colour(label)
    flips = 0
    for seed in range(12):
        crop, crop_label, _, flipped = paired_crop_flip(image, label, 64, (0.08, 1.0), np.random.default_rng(seed))
        flips += flipped
        assert crop.shape == (64, 64, 3) and crop_label.shape == (64, 64)
        assert set(np.unique(crop_label)) <= set(np.unique(label))  # nearest: no blended ids
        interior = _interior(crop_label)  # pixels away from label edges, where the bilinear image is not blended
        assert interior.mean() > 0.15
        agree = np.all(np.abs(crop.astype(int) - _colour(crop_label).astype(int)) <= 4, axis=-1)[interior].mean()
        assert agree > 0.99, (seed, agree)
        mirrored = crop_label[:, ::-1]
        if np.any(mirrored[interior] != crop_label[interior]):  # a mirrored label would not fit the image
            assert np.all(np.abs(crop.astype(int) - _colour(mirrored).astype(int)) <= 4, -1)[interior].mean() < agree
    assert 0 < flips < 12

    # the full training transform: normalised image, label at half resolution sampled at pixel centres
    image_t, label_t = training_pair(image, label, 64, (0.3, 1.0), 0.5, np.random.default_rng(3))
    crop, crop_label, _, _ = paired_crop_flip(image, label, 64, (0.3, 1.0), np.random.default_rng(3))
    assert image_t.shape == (3, 64, 64) and image_t.dtype == np.float32
    assert label_t.shape == (32, 32) and label_t.dtype == np.int32
    np.testing.assert_array_equal(label_t, crop_label[1::2, 1::2])


def test_resize_nearest_and_label_checks(workspace, tmp_path):
    np.testing.assert_array_equal(resize_nearest(np.array([[1, 2], [3, 4]]), 4, 4),
                                  np.kron([[1, 2], [3, 4]], np.ones((2, 2), int)))
    # labels of another size than the image are resized to it; items carry the largest class id
    split = ImageNetSSplit(workspace["root"], "train")
    dataset = PseudoLabelDataset(split, workspace["labels"], crop_size=64, seed=0)
    image, label, error = dataset.load_pair(0)
    assert error == "" and label.shape == image.shape[:2] == (64, 64)
    crop, target, name, top, error = dataset[0]
    assert crop.shape == (3, 64, 64) and target.shape == (32, 32) and name == split.names[0] and int(top) == 1
    # crops depend only on (seed, epoch, image): a fresh dataset (a resumed run) sees the same ones
    again = PseudoLabelDataset(split, workspace["labels"], crop_size=64, seed=0, check=False)
    for index in (len(split) + 3, 4 * len(split) + 7):
        first, second = dataset[index], again[index]
        np.testing.assert_array_equal(first[0], second[0])
        np.testing.assert_array_equal(first[1], second[1])
    assert not np.array_equal(dataset[3][0], dataset[len(split) + 3][0])  # other epoch, other crop
    with pytest.raises(PseudoLabelError, match="holds class id 5"):
        check_label_ids(["a/b.JPEG"], [5], 3, "labels")
    # a missing pseudo label is reported up front, naming it and counting
    partial = tmp_path / "partial"
    for name in split.names[2:]:
        os.makedirs(partial / os.path.dirname(name), exist_ok=True)
        os.link(os.path.join(workspace["labels"], layout.label_name(name)), partial / layout.label_name(name))
    with pytest.raises(PseudoLabelError, match=r"2 of 18 images .* missing .*" + os.path.basename(
            layout.label_name(split.names[0]))):
        PseudoLabelDataset(split, str(partial))


# ------------------------------------------------------------------------------ (d) cross-entropy


def test_masked_cross_entropy_ignores_label_1000():
    values = np.array([[[[1.0, 2.0, 0.5]], [[3.0, 0.5, 0.5]], [[0.0, -1.0, 2.0]]]], np.float32)  # 1 x 3 x 1 x 3
    logits = jt.array(values)
    loss, count = masked_cross_entropy(logits, jt.array(np.array([[[0, IGNORE, 2]]], np.int32)))

    def nll(column, target):
        x = values[0, :, 0, column].astype(np.float64)
        return np.log(np.exp(x).sum()) - x[target]

    assert count.item() == 2
    assert loss.item() == pytest.approx((nll(0, 0) + nll(2, 2)) / 2, rel=1e-5)
    grad = jt.grad(loss, logits).numpy()
    np.testing.assert_array_equal(grad[0, :, 0, 1], 0.0)  # the ignored pixel gets no gradient
    assert np.abs(grad[0, :, 0, 0]).sum() > 0
    # whatever the logits of the ignored pixel, the loss is the same
    changed = values.copy()
    changed[0, :, 0, 1] = [50.0, -20.0, 7.0]
    loss2, _ = masked_cross_entropy(jt.array(changed), jt.array(np.array([[[0, IGNORE, 2]]], np.int32)))
    assert loss2.item() == pytest.approx(loss.item(), rel=1e-6)
    empty, none = masked_cross_entropy(logits, jt.array(np.full((1, 1, 3), IGNORE, np.int32)))
    assert none.item() == 0 and empty.item() == 0.0


def test_class_weighted_cross_entropy_is_the_weighted_mean_of_the_pixel_terms():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(2, 4, 3, 5))
    labels = rng.integers(0, 4, size=(2, 3, 5))
    labels[0, 0, :2] = IGNORE
    weights = np.array([0.5, 2.0, 1.0, 3.0])
    loss, count = masked_cross_entropy(jt.array(values.astype(np.float32)), jt.array(labels.astype(np.int32)),
                                       class_weights=jt.array(weights.astype(np.float32)))
    # float64 reference: PyTorch's cross_entropy(weight=w, ignore_index=1000) = sum w_y * nll / sum w_y
    valid = labels != IGNORE
    target = np.where(valid, labels, 0)
    log_softmax = values - np.log(np.exp(values).sum(axis=1, keepdims=True))
    nll = -np.take_along_axis(log_softmax, target[:, None], axis=1)[:, 0]
    expected = (weights[target] * nll)[valid].sum() / weights[target][valid].sum()
    assert count.item() == valid.sum()
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    unweighted, _ = masked_cross_entropy(jt.array(values.astype(np.float32)), jt.array(labels.astype(np.int32)))
    assert unweighted.item() == pytest.approx(nll[valid].mean(), rel=1e-5)
    assert abs(unweighted.item() - loss.item()) > 1e-3


def test_median_frequency_weights_by_hand(tmp_path):
    # Three 2 x 2 labels: id 1 in two images (3 of 8 pixels), id 2 in one (1 of 3 counted pixels: one ignored),
    # background in all three (7 of 11); id 3 nowhere.
    maps = {"n1/a.JPEG": [[0, 1], [1, 0]], "n1/b.JPEG": [[0, 0], [0, 1]], "n2/c.JPEG": [[2, 0], [0, IGNORE]]}
    for name, ids in maps.items():
        write_label_png(os.path.join(tmp_path, layout.label_name(name)), np.array(ids, np.int32))
    counts = class_balance.label_frequencies(str(tmp_path), list(maps), num_classes=3)
    np.testing.assert_array_equal(counts, [[7, 3, 1, 0], [11, 8, 3, 0]])
    frequency = np.array([7 / 11, 3 / 8, 1 / 3])
    median = np.median(frequency)  # 3 / 8
    np.testing.assert_allclose(class_balance.class_weights(counts, "median-frequency"),
                               [median / frequency[0], 1.0, median / frequency[2], 0.0], rtol=1e-6)
    np.testing.assert_array_equal(class_balance.class_weights(counts, "none"), [1, 1, 1, 1])
    with pytest.raises(ValueError, match="unknown"):
        class_balance.class_weights(counts, "inverse")


# ----------------------------------------------------------------------------- (b) fine-tuning


def test_finetune_checkpoint_log_and_noop_rerun(workspace, project_root):
    path = os.path.join(workspace["dump"], "checkpoint.safetensors")
    state = load_checkpoint(path)
    assert state["epoch"] == 2
    assert state["args"]["arch"] == "resnet18" and state["args"]["num_classes"] == K
    assert state["args"]["head"] == "linear"
    assert any(k.startswith("head.conv.") for k in state["state_dict"])
    assert all(k.startswith(("backbone.", "head.")) for k in state["state_dict"])
    with open(os.path.join(workspace["dump"], "log.jsonl")) as handle:
        records = [json.loads(line) for line in handle]
    assert [r["epoch"] for r in records] == [1, 2]
    assert all(np.isfinite(r["loss"]) and r["images_per_s"] > 0 and 0 <= r["data_wait_share"] <= 1 for r in records)
    before = os.stat(path).st_mtime_ns
    run = subprocess.run([sys.executable, os.path.join(project_root, "main_pixel_finetuning.py")] + workspace["argv"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "complete" in run.stdout
    assert os.stat(path).st_mtime_ns == before


def test_finetune_overfits_a_fixed_batch(workspace):
    """Repeated steps on one batch drive the loss down (128 px crops: at 64 px C5 is 2x2 and the first steps of
    a random backbone with PASS's kaiming-initialised head are too erratic for a reliable check)."""
    jt.set_global_seed(0)
    model = build_segmentation_model("resnet18", K)
    load_pretrained_backbone(model, workspace["pretrained"])
    model.train()
    dataset = PseudoLabelDataset(ImageNetSSplit(workspace["root"], "train"), workspace["labels"], crop_size=128,
                                 seed=0, batch_size=4)
    images, labels, _, _, errors = next(iter(dataset))
    assert list(errors) == [""] * 4 and tuple(labels.shape) == (4, 64, 64)
    optimizer = jt.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-6)
    losses = []
    for _ in range(8):
        loss, count, _ = segmentation_loss(model, images, labels)
        optimizer.step(loss)
        losses.append(loss.item())
    assert count.item() > 0
    assert losses[-1] < 0.5 * losses[0], losses


def test_finetune_weighs_classes_by_median_frequency(workspace, tmp_path, capsys):
    # Each 32 x 32 label: a 16 x 16 square of its class, the top row ignored, background 1024 - 256 - 32 = 736
    # pixels; every id is in 6 of the 18 images except background (all), so f = 736 / 992 and 256 / 992, median
    # 256 / 992: background weighs 256 / 736, the classes 1.
    argv = list(workspace["argv"])
    argv[argv.index("--dump-path") + 1] = str(tmp_path / "weighted")
    argv[argv.index("--epochs") + 1] = "1"
    finetune.main(argv + ["--class-weights", "median-frequency"])
    line = next(line for line in capsys.readouterr().out.splitlines() if "class weights (median-frequency)" in line)
    assert line.endswith(f"0: 74.2% -> {256 / 736:.2f}, 1: 8.6% -> 1.00, 2: 8.6% -> 1.00, 3: 8.6% -> 1.00"), line


def test_pretrained_backbone_errors_name_the_file(workspace, tmp_path):
    with pytest.raises(CheckpointError, match=r"pretrain\.pth\.tar.*missing.*backbone\.layer1\.0\.conv3"):
        load_pretrained_backbone(build_segmentation_model("resnet50", K), workspace["pretrained"])
    empty = str(tmp_path / "empty.pth.tar")
    save_checkpoint(empty, {"state_dict": {"prototypes.weight": np.zeros((2, 2), np.float32)}})
    with pytest.raises(CheckpointError, match="empty.pth.tar: holds no backbone"):
        load_pretrained_backbone(build_segmentation_model("resnet18", K), empty)


def test_swap_backbone_takes_the_donors_backbone_and_keeps_the_rest(tmp_path):
    rng = np.random.default_rng(0)
    tensor = lambda *shape: rng.standard_normal(shape).astype(np.float32)  # noqa: E731
    base = {"backbone.conv1.weight": tensor(4, 3, 3, 3), "backbone.bn1.running_mean": tensor(4),
            "projection_head.0.weight": tensor(8, 4), "prototypes.weight": tensor(5, 8)}
    donor = {"backbone.conv1.weight": tensor(4, 3, 3, 3), "backbone.bn1.running_mean": tensor(4),
             "head.classifier.weight": tensor(3, 4, 1, 1)}
    paths = {name: str(tmp_path / f"{name}.safetensors") for name in ("base", "donor", "out", "bad")}
    save_checkpoint(paths["base"], {"epoch": 10, "args": {"arch": "resnet18"}, "state_dict": base,
                                    "optimizer": {"lr": 0.1}})
    save_checkpoint(paths["donor"], {"epoch": 40, "args": {}, "state_dict": donor})
    assert swap_backbone(paths["base"], paths["donor"], paths["out"]) == 2
    out = load_checkpoint(paths["out"])
    assert sorted(out["state_dict"]) == sorted(base) and out["epoch"] == 10 and out["args"] == {"arch": "resnet18"}
    for name, value in out["state_dict"].items():
        assert np.array_equal(value, donor[name] if name.startswith("backbone.") else base[name]), name
    assert "optimizer" not in out
    save_checkpoint(paths["bad"], {"state_dict": {**donor, "backbone.conv1.weight": tensor(2, 3, 3, 3)}})
    with pytest.raises(CheckpointError, match=r"bad\.safetensors: does not hold the backbone.*backbone\.conv1\.weight"):
        swap_backbone(paths["base"], paths["bad"], str(tmp_path / "never.safetensors"))
    assert not os.path.exists(tmp_path / "never.safetensors")


# ------------------------------------------------------------------------------ (c) inference


def test_upsample_argmax_matches_bilinear_interpolation():
    logits = jt.array(np.random.default_rng(0).normal(size=(1, 5, 7, 9)).astype(np.float32))
    reference = jt.nn.interpolate(logits, size=(50, 61), mode="bilinear", align_corners=False).numpy()[0].argmax(0)
    np.testing.assert_array_equal(upsample_argmax(logits, 50, 61, chunk_elements=5 * 61 * 7), reference)
    # PASS inference.py: above 1000 x 1000 pixels, logits at (1000, int(1000 * W / H)), whatever the aspect.
    assert inference_size(*BIG, 1000 * 1000) == (1000, 1200)
    assert inference_size(2000, 1000, 1000 * 1000) == (1000, 500)
    assert inference_size(1200, 1001, 1000 * 1000) == (1000, 834)
    assert inference_size(64, 80, 1000 * 1000) == (64, 80)
    # and enlarged as torch's mode="nearest" (source floor(i * in / out))
    small = np.arange(6).reshape(2, 3)
    reference = jt.nn.interpolate(jt.array(small[None, None].astype(np.float32)), size=(5, 7), mode="nearest")
    np.testing.assert_array_equal(enlarge_nearest(small, 5, 7), reference.numpy()[0, 0].astype(int))


def test_inference_writes_original_sizes_evaluates_and_resumes(workspace):
    root, out = workspace["root"], str(workspace["base"] / "pred" / "validation")
    checkpoint = os.path.join(workspace["dump"], "checkpoint.safetensors")
    assert inference.main(["--checkpoint", checkpoint, "--data", root, "--out", out, "--match", "auto",
                           "--workers", "0", "--quiet"]) == 0
    split = ImageNetSSplit(root, "validation")
    for name in split.names:
        prediction = read_label_png(os.path.join(out, layout.label_name(name)))
        assert prediction.shape == split.load(split.names.index(name)).size
        assert prediction.min() >= 0 and prediction.max() <= K
    assert read_label_png(os.path.join(out, layout.label_name(workspace["big_name"]))).shape == BIG
    assert os.path.isfile(os.path.join(out, "match.json"))
    with open(out + "_result.json") as handle:
        result = json.load(handle)
    assert result["num_images"] == len(split) and 0.0 <= result["mIoU"] <= 1.0

    # a truncated and a mis-sized prediction are redone; the good ones are left untouched
    paths = [os.path.join(out, layout.label_name(n)) for n in split.names]
    with open(paths[0], "rb") as handle:
        data = handle.read()
    with open(paths[0], "wb") as handle:
        handle.write(data[: len(data) // 2])
    write_label_png(paths[1], np.zeros((5, 7), np.int32))
    stamps = {p: os.stat(p).st_mtime_ns for p in paths[2:]}
    model, _ = load_finetuned(checkpoint)
    summary = predict_split(model, split, out, workers=0, progress=False)
    assert (summary.written, summary.redone, summary.skipped, summary.failed) == (2, 2, len(paths) - 2, [])
    assert all(os.stat(p).st_mtime_ns == stamp for p, stamp in stamps.items())
    for index in (0, 1):
        assert read_label_png(paths[index]).shape == split.load(index).size


def test_inference_reports_bad_images_and_continues(workspace, tmp_path):
    root = str(tmp_path / "data")
    os.makedirs(os.path.join(root, "extra", "n00000001"))
    Image.fromarray(np.full((40, 50, 3), 128, np.uint8)).save(os.path.join(root, "extra", "n00000001", "good.JPEG"))
    with open(os.path.join(root, "extra", "n00000001", "bad.JPEG"), "wb") as handle:
        handle.write(b"\xff\xd8\xff\xe0 not really a jpeg")
    model, _ = load_finetuned(os.path.join(workspace["dump"], "checkpoint.safetensors"))
    out = str(tmp_path / "out")
    summary = predict_split(model, ImageNetSSplit(root, "extra"), out, workers=0, progress=False)
    assert summary.written == 1 and len(summary.failed) == 1 and "bad.JPEG" in summary.failed[0][1]
    assert read_label_png(os.path.join(out, "n00000001", "good.png")).shape == (40, 50)
    assert not os.path.exists(os.path.join(out, "n00000001", "bad.png"))


def test_classifier_init_sets_the_first_loss():
    """The default N(0, 0.01) classifier starts the loss at ln(K+1); PASS's kaiming init (kept as an option for the
    paper preset) starts it several times higher on C5 features, which plain SGD on the demo never recovered from."""
    import jittor as jt

    rng = np.random.default_rng(0)
    images = jt.array(rng.normal(size=(4, 3, 64, 64)).astype(np.float32))
    labels = jt.array(rng.integers(0, K + 1, size=(4, 32, 32)).astype(np.int32))
    losses = {}
    for init in ("normal", "kaiming"):
        jt.set_global_seed(0)
        model = build_segmentation_model("resnet18", K, "linear", classifier_init=init)
        with jt.no_grad():
            losses[init] = segmentation_loss(model, images, labels)[0].item()
    assert abs(losses["normal"] - np.log(K + 1)) < 0.05, losses
    assert losses["kaiming"] > 2 * np.log(K + 1), losses
    head = build_segmentation_model("resnet18", K, "upernet", classifier_init="normal", channels=32).head
    assert head.channels == 32 and abs(float(head.conv_seg.weight.numpy().std()) - 0.01) < 0.003
