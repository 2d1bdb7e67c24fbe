"""uss.writer, the per-image writer of pseudo labels, inference and test.py: --shard parsing, resuming, the failure
policy (one line per file, stale outputs removed, the per-part lists merged into one report) and best-effort
decoding. The label function is plain numpy, so these run without a model."""
import os

import numpy as np
import pytest
from PIL import Image

from uss import writer
from uss.atomic import atomic_write_json
from uss.data.label_png import read_label_png, write_label_png
from uss.data.split import ImageNetSSplit
from uss.errors import InputError


@pytest.fixture
def split(tmp_path):
    """Six images in two class folders; one is not an image, one is truncated."""
    root = tmp_path / "data"
    rng = np.random.default_rng(0)
    for index in range(6):
        folder = root / "extra" / f"n0000000{index % 2 + 1}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (20 + index, 30, 3), dtype=np.uint8)).save(folder / f"img{index}.JPEG")
    (root / "extra" / "n00000001" / "img2.JPEG").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    whole = (root / "extra" / "n00000002" / "img3.JPEG").read_bytes()
    (root / "extra" / "n00000002" / "img3.JPEG").write_bytes(whole[: len(whole) * 3 // 4])
    return ImageNetSSplit(str(root), "extra")


def brightness(image, name):
    """A label map that depends on the image: 1 where the red channel is above its median."""
    return (image[..., 0] > np.median(image[..., 0])).astype(np.int32)


def test_shard_parsing():
    assert writer.parse_shard(None) is None and writer.parse_shard("") is None
    assert writer.parse_shard("1/3") == (1, 3)
    for bad in ("x", "1", "1/2/3", "3/2", "-1/2", "2/2"):
        with pytest.raises(InputError, match="--shard"):
            writer.parse_shard(bad)
    assert writer.this_part("2/5") == writer.Part(2, 5, independent=True)
    assert writer.this_part(None) == writer.Part(0, 1)  # no MPI: everything


def test_failures_are_reported_per_file_and_merged_into_one_report(split, tmp_path, capsys):
    out = str(tmp_path / "labels")
    # an earlier broken output of the undecodable image must not pass for a result
    write_label_png(writer.output_path(out, "n00000001/img2.JPEG"), np.zeros((3, 3), np.int32))
    summary = writer.write_split(split, out, brightness, desc="labels", workers=2, progress=False)
    assert (summary.images, summary.written, summary.skipped) == (6, 4, 0)
    assert [name for name, _ in summary.failed] == ["n00000001/img2.JPEG", "n00000002/img3.JPEG"]
    assert all("\n" not in message and split.image_path(name) in message for name, message in summary.failed)
    assert not os.path.exists(writer.output_path(out, "n00000001/img2.JPEG"))
    failed = writer.settle(split, out, writer.Part(), summary, "[t]")
    assert failed == summary.failed
    report = (tmp_path / "labels_failures.txt").read_text().splitlines()
    assert [line.split("\t")[0] for line in report] == ["n00000001/img2.JPEG", "n00000002/img3.JPEG"]
    err = capsys.readouterr().err
    assert "[t] 2 image(s) failed" in err and err.count("cannot decode") >= 2
    assert not list(tmp_path.glob("labels_failures.*.json"))  # the per-part list is merged, then removed
    for name in split.names:
        if name not in dict(failed):
            image = np.asarray(Image.open(split.image_path(name)).convert("RGB"))
            np.testing.assert_array_equal(read_label_png(writer.output_path(out, name)), brightness(image, name))


def test_parts_merge_and_a_rerun_only_redoes_what_is_missing(split, tmp_path, capsys):
    out = str(tmp_path / "labels")
    # two MPI-like parts written one after the other: rank 1's list is on disk when "rank 0" merges
    part1 = writer.Part(1, 2)
    summary1 = writer.write_split(split, out, brightness, part1, workers=0, progress=False)
    atomic_write_json(writer._part_list(out, part1), [{"name": n, "error": e} for n, e in summary1.failed])
    part0 = writer.Part(0, 2)
    summary0 = writer.write_split(split, out, brightness, part0, workers=0, progress=False)
    failed = writer.settle(split, out, part0, summary0, "[t]")
    assert sorted(name for name, _ in failed) == ["n00000001/img2.JPEG", "n00000002/img3.JPEG"]
    assert all("cannot decode" in message for _, message in failed)  # rank 1's message, not "no output written"
    # a rerun keeps the good outputs, redoes a truncated one, and decodes the truncated JPEG best-effort on request
    path = writer.output_path(out, split.names[0])
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])
    (tmp_path / "labels" / "n00000001" / ".x.png.tmp").write_bytes(b"x")  # what a killed atomic write leaves
    again = writer.write_split(split, out, brightness, workers=1, decode_truncated=True, progress=False)
    assert "removed 1 temporary file" in capsys.readouterr().out
    assert (again.written, again.redone, again.skipped) == (2, 1, 3)
    assert [name for name, _ in again.truncated] == ["n00000002/img3.JPEG"]
    assert writer.settle(split, out, writer.Part(), again, "[t]") == [("n00000001/img2.JPEG", again.failed[0][1])]
    assert again.describe().startswith("2 written (1 of them redone), 3 kept, 1 failed, ")
    assert (tmp_path / "labels_truncated.txt").read_text().startswith("n00000002/img3.JPEG\t")


def test_an_independent_shard_reports_only_its_own_failures(split, tmp_path, capsys):
    out = str(tmp_path / "labels")
    (tmp_path / "labels" / "n00000001").mkdir(parents=True)
    (tmp_path / "labels" / "n00000001" / ".y.png.tmp").write_bytes(b"y")  # another shard's write in flight
    part = writer.this_part("0/2")
    summary = writer.write_split(split, out, brightness, part, workers=0, progress=False)
    assert summary.images == 3 and [n for n, _ in summary.failed] == ["n00000002/img3.JPEG"]  # img0, img4, img3
    assert writer.settle(split, out, part, summary, "[t]") == summary.failed
    assert "failed: " in capsys.readouterr().err
    assert (tmp_path / "labels" / "n00000001" / ".y.png.tmp").exists()  # not removed by a shard
    assert not (tmp_path / "labels_failures.txt").exists()  # the final unsharded run writes the report


def test_processing_errors_are_failures_too(split, tmp_path):
    def explode(image, name):
        if name.endswith("img4.JPEG"):
            raise RuntimeError("out of memory\nsecond line")
        return brightness(image, name)

    summary = writer.write_split(split, str(tmp_path / "labels"), explode, workers=0, progress=False)
    messages = dict(summary.failed)
    assert "processing failed (RuntimeError: out of memory second line)" in messages["n00000001/img4.JPEG"]
    assert summary.written == 3
