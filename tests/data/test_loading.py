"""The ImageNet-S data layer: layout, robust image decoding, label codec, datasets, bad-file handling."""
import io
import os

import numpy as np
import pytest
from PIL import Image

from uss.data import layout
from uss.data.image_io import ImageFileError, image_size, load_rgb
from uss.data.label_png import (IGNORE, LabelFileError, decode_label, encode_label, read_label_png,
                                write_label_png)
from uss.data.split import ImageNetSSplit
from uss.errors import InputError


def save(image: Image.Image, path, **kwargs) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image.save(path, **kwargs)
    return str(path)


def gradient_rgb(height=20, width=30) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 8 % 256, y * 12 % 256, (x + y) * 4 % 256], axis=2).astype(np.uint8)


def test_label_codec_round_trip_and_encoding(tmp_path):
    ids = np.array([[0, 1, 255], [256, 919, IGNORE]], dtype=np.int32)
    rgb = encode_label(ids)
    # R + 256 * G written by hand: 919 = 3 * 256 + 151, 1000 = 3 * 256 + 232.
    assert rgb[1, 1].tolist() == [151, 3, 0]
    assert rgb[1, 2].tolist() == [232, 3, 0]
    assert np.array_equal(decode_label(rgb), ids)
    path = tmp_path / "a" / "x.png"
    write_label_png(str(path), ids)
    assert np.array_equal(read_label_png(str(path)), ids)
    assert [p for p in os.listdir(path.parent) if p.endswith(".tmp")] == []


def test_label_read_errors_name_the_file(tmp_path):
    path = tmp_path / "bad.png"
    write_label_png(str(path), np.ones((40, 40), np.int32))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(LabelFileError, match="bad.png"):
        read_label_png(str(path))
    with pytest.raises(LabelFileError, match="missing.png"):
        read_label_png(str(tmp_path / "missing.png"))


@pytest.mark.parametrize("kind", ["rgb", "gray", "cmyk", "palette", "rgba", "la", "gray16", "exif"])
def test_every_image_kind_becomes_rgb_uint8(tmp_path, kind):
    rgb = gradient_rgb()
    base = Image.fromarray(rgb)
    path = str(tmp_path / f"{kind}.png")
    if kind == "rgb":
        save(base, path)
    elif kind == "gray":
        path = save(base.convert("L"), str(tmp_path / "g.JPEG"), quality=95)
    elif kind == "cmyk":
        path = save(base.convert("CMYK"), str(tmp_path / "c.JPEG"), quality=95)
    elif kind == "palette":
        paletted = base.convert("P", palette=Image.ADAPTIVE, colors=16)
        save(paletted, path)
        rgb = np.asarray(paletted.convert("RGB"))  # the palette colours are the expected pixels
    elif kind == "rgba":
        rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=2)
        rgba[:, :10, 3] = 0  # left third transparent: composited over white
        save(Image.fromarray(rgba, "RGBA"), path)
    elif kind == "la":
        save(base.convert("LA"), path)
    elif kind == "gray16":
        save(Image.fromarray((rgb[..., 0].astype(np.uint16) * 257)).convert("I;16"), path)
    elif kind == "exif":
        exif = Image.Exif()
        exif[0x0112] = 6  # "rotate 90 CW" orientation tag
        path = save(base, str(tmp_path / "e.JPEG"), quality=95, exif=exif.tobytes())
    out = load_rgb(path)
    assert out.dtype == np.uint8 and out.shape == (20, 30, 3)
    assert image_size(path) == (20, 30)
    if kind in ("rgb", "palette"):
        assert np.array_equal(out, rgb)
    if kind in ("gray", "gray16", "la"):
        assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
    if kind == "gray16":
        assert np.array_equal(out[..., 0], rgb[..., 0])  # 16-bit scaled back to the 8-bit values
    if kind == "rgba":
        assert (out[:, :10] == 255).all() and np.array_equal(out[:, 10:], rgb[:, 10:])
    if kind == "cmyk":
        assert np.abs(out.astype(int) - rgb.astype(int)).mean() < 12


def test_truncated_and_garbage_images_raise_naming_the_file(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(gradient_rgb(64, 64)).save(buffer, format="JPEG", quality=95)
    truncated = tmp_path / "trunc.JPEG"
    truncated.write_bytes(buffer.getvalue()[:400])
    garbage = tmp_path / "garbage.JPEG"
    garbage.write_bytes(b"not an image at all")
    for path in (truncated, garbage, tmp_path / "absent.JPEG"):
        with pytest.raises(ImageFileError) as info:
            load_rgb(str(path))
        assert path.name in str(info.value) and "\n" not in str(info.value)
        assert isinstance(info.value, InputError)


def make_dataset(root, counts={"n001": 2, "n002": 3}):
    for wnid, count in counts.items():
        for i in range(count):
            save(Image.fromarray(gradient_rgb()), os.path.join(root, "train", wnid, f"{wnid}_{i}.JPEG"))
            save(Image.fromarray(gradient_rgb()), os.path.join(root, "validation", wnid, f"val_{wnid}_{i}.JPEG"))
            write_label_png(os.path.join(root, "validation-segmentation", wnid, f"val_{wnid}_{i}.png"),
                            np.full((20, 30), 1, np.int32))


def test_split_lists_names_sizes_and_labels(tmp_path):
    make_dataset(str(tmp_path))
    train = ImageNetSSplit(str(tmp_path), "train")
    assert train.names == ["n001/n001_0.JPEG", "n001/n001_1.JPEG", "n002/n002_0.JPEG",
                           "n002/n002_1.JPEG", "n002/n002_2.JPEG"]
    assert layout.load_categories(str(tmp_path)) == ["n001", "n002"]
    assert layout.class_of("n002/x.JPEG", ["n001", "n002"]) == 2
    val = ImageNetSSplit(str(tmp_path), "validation")
    item = val.load(0)
    assert item.size == (20, 30) and item.name == "n001/val_n001_0.JPEG"
    assert val.has_segmentation and val.load_label(0).shape == (20, 30)
    assert not train.has_segmentation
    shards = [train.shard(i, 2).names for i in range(2)]
    assert sorted(shards[0] + shards[1]) == train.names and not set(shards[0]) & set(shards[1])
    # A name list, when present, defines the split.
    os.makedirs(tmp_path / "names")
    (tmp_path / "names" / "train.txt").write_text("n002/n002_1.JPEG\nn001/n001_0.JPEG\n")
    assert ImageNetSSplit(str(tmp_path), "train").names == ["n001/n001_0.JPEG", "n002/n002_1.JPEG"]


def test_missing_or_empty_split_is_a_one_line_error(tmp_path):
    with pytest.raises(layout.DatasetNotFoundError) as info:
        ImageNetSSplit(str(tmp_path / "nowhere"), "validation")
    message = str(info.value)
    assert os.path.join(str(tmp_path / "nowhere"), "validation") in message and "--data" in message
    assert "\n" not in message
    os.makedirs(tmp_path / "empty" / "test" / "n001")
    with pytest.raises(layout.DatasetNotFoundError, match="empty"):
        ImageNetSSplit(str(tmp_path / "empty"), "test")


@pytest.mark.parametrize("workers", [0, 2])
def test_loader_reports_bad_file_by_name_or_skips_it(tmp_path, workers):
    from uss.data.dataset import BadFileGuard, ImageDataset

    make_dataset(str(tmp_path))
    bad = tmp_path / "train" / "n002" / "n002_1.JPEG"
    bad.write_bytes(bad.read_bytes()[:300])
    split = ImageNetSSplit(str(tmp_path), "train")

    def resize(image):
        return np.asarray(Image.fromarray(image).resize((16, 16))).astype(np.float32)

    dataset = ImageDataset(split, resize, batch_size=2, num_workers=workers)
    guard = BadFileGuard(skip_bad=True, stage="test")
    seen = []
    for images, names, sizes, errors in dataset:
        good = guard.check(errors)
        seen += [n for n, ok in zip(names, good) if ok]
        assert tuple(images.shape[1:]) == (16, 16, 3)
    assert sorted(seen) == sorted(set(split.names) - {"n002/n002_1.JPEG"})
    assert len(guard.skipped) == 1 and "n002_1.JPEG" in guard.skipped[0]

    strict = BadFileGuard(skip_bad=False)
    with pytest.raises(ImageFileError, match="n002_1.JPEG"):
        for _, _, _, errors in ImageDataset(split, resize, batch_size=2, num_workers=workers):
            strict.check(errors)


def test_multicrop_batches_do_not_depend_on_the_worker_count(tmp_path):
    """The demo presets load in-process (--workers 0, faster on 2 cores); a run with loader processes must see the
    very same crops and overlap grids, since every random choice is seeded by (seed, epoch, image)."""
    from uss.data.multicrop import MultiCropDataset
    from uss.data.toy import generate as make_toy

    make_toy(str(tmp_path / "toy"), classes=2, size=64, train_per_class=4, val_per_class=1, test_per_class=1,
             progress=False)
    split = ImageNetSSplit(str(tmp_path / "toy"), "train")

    def epoch_batches(workers):
        dataset = MultiCropDataset(split, [64, 32], [2, 2], [0.3, 0.1], [1, 0.3], seed=5, batch_size=4,
                                   num_workers=workers, blur_sigma=0.7, color_strength=0.5)
        dataset.set_epoch(1)
        batches = [[v.numpy() for v in [*crops, grid_q, grid_k]] for crops, grid_q, grid_k, _ in dataset]
        dataset.stop_workers()
        return batches

    inline, forked = epoch_batches(0), epoch_batches(2)
    assert len(inline) == len(forked) == 2
    for a, b in zip(inline, forked):
        assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(inline[0][0], inline[1][0])  # two different batches, not one repeated
