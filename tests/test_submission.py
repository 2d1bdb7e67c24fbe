"""Benchmark zip packing: layout, match.json round trip, validation, and evaluation parity."""
import json
import os
import zipfile

import numpy as np
import pytest

from uss.data.label_png import IGNORE, write_label_png
from uss.evaluation import evaluate_folder, load_match
from uss.submission import SubmissionError, main as submission_main, pack_submission

MATCH = {0: 0, 1: 2, 2: 1}  # square, as the official matching: every id 1..K mapped


def make_predictions(tmp_path):
    """GT and raw-id predictions for 2 class folders x 2 images; returns (pred_dir, gt_dir)."""
    rng = np.random.default_rng(0)
    for wnid, cls in (("n001", 1), ("n002", 2)):
        for i in range(2):
            gt = np.zeros((10, 12), np.int32)
            gt[2:8, 3:9] = cls
            gt[0, :] = IGNORE
            raw = np.where(gt == cls, {1: 2, 2: 1}[cls], 0)
            raw[rng.random(raw.shape) < 0.1] = 1
            write_label_png(str(tmp_path / "gt" / wnid / f"img{i}.png"), gt)
            write_label_png(str(tmp_path / "pred" / wnid / f"img{i}.png"), raw)
    return str(tmp_path / "pred"), str(tmp_path / "gt")


def write_match(tmp_path):
    path = tmp_path / "match.json"
    path.write_text(json.dumps({str(k): v for k, v in MATCH.items()}))
    return str(path)


def test_zip_layout_and_match_round_trip(tmp_path):
    pred_dir, _ = make_predictions(tmp_path)
    out = tmp_path / "out" / "result.zip"
    summary = pack_submission(pred_dir, str(out), write_match(tmp_path), "PASS (Jittor) demo")
    assert summary["num_pngs"] == 4 and summary["classes"] == 2
    with zipfile.ZipFile(out) as archive:
        names = sorted(archive.namelist())
        assert names == ["match.json", "method.txt", "n001/img0.png", "n001/img1.png", "n002/img0.png",
                         "n002/img1.png"]
        assert json.loads(archive.read("match.json")) == {"0": 0, "1": 2, "2": 1}
        assert archive.read("method.txt").decode() == "PASS (Jittor) demo\n"
        assert archive.read("n001/img0.png") == open(os.path.join(pred_dir, "n001", "img0.png"), "rb").read()
    assert [n for n in os.listdir(out.parent) if n != "result.zip"] == []  # no temp file left


def test_evaluation_from_extracted_zip_equals_folder(tmp_path):
    pred_dir, gt_dir = make_predictions(tmp_path)
    out = tmp_path / "result.zip"
    pack_submission(pred_dir, str(out), MATCH, "demo", result_dir=str(tmp_path / "result"))
    extracted = tmp_path / "extracted"
    with zipfile.ZipFile(out) as archive:
        archive.extractall(extracted)
    assert load_match(str(extracted / "match.json")) == MATCH
    direct = evaluate_folder(pred_dir, gt_dir, categories=["n001", "n002"], match=MATCH, progress=False)
    from_zip = evaluate_folder(str(extracted), gt_dir, categories=["n001", "n002"],
                               match=str(extracted / "match.json"), progress=False)
    from_dir = evaluate_folder(str(tmp_path / "result"), gt_dir, categories=["n001", "n002"],
                               match=str(tmp_path / "result" / "match.json"), progress=False)
    timing = ("seconds", "images_per_s")
    strip = lambda r: {k: v for k, v in r.items() if k not in timing}  # noqa: E731
    assert strip(from_zip) == strip(direct) == strip(from_dir)
    assert direct["mIoU"] > 0.5


def test_bad_png_is_named_and_no_zip_written(tmp_path):
    pred_dir, _ = make_predictions(tmp_path)
    bad = os.path.join(pred_dir, "n002", "img1.png")
    data = open(bad, "rb").read()
    with open(bad, "wb") as handle:
        handle.write(data[:40])
    out = tmp_path / "result.zip"
    with pytest.raises(SubmissionError, match=r"n002/img1\.png"):
        pack_submission(pred_dir, str(out), MATCH, "demo")
    assert not out.exists()


def test_unexpected_files_and_bad_match_are_rejected(tmp_path):
    pred_dir, _ = make_predictions(tmp_path)
    (tmp_path / "pred" / "n001" / "notes.txt").write_text("x")
    with pytest.raises(SubmissionError, match=r"n001/notes\.txt"):
        pack_submission(pred_dir, str(tmp_path / "r.zip"), MATCH, "demo")
    os.remove(tmp_path / "pred" / "n001" / "notes.txt")
    bad = tmp_path / "broken.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="broken.json"):
        pack_submission(pred_dir, str(tmp_path / "r.zip"), str(bad), "demo")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("x")
    with pytest.raises(SubmissionError, match="not empty"):
        pack_submission(pred_dir, str(tmp_path / "r.zip"), MATCH, "demo", result_dir=str(tmp_path / "busy"))


def test_cli(tmp_path, capsys):
    pred_dir, _ = make_predictions(tmp_path)
    match = write_match(tmp_path)
    out = tmp_path / "result.zip"
    assert submission_main(["--pred", pred_dir, "--match", match, "--method", "demo", "--out", str(out)]) == 0
    assert zipfile.ZipFile(out).read("method.txt") == b"demo\n"
    assert "4 PNGs" in capsys.readouterr().out
    code = submission_main(["--pred", str(tmp_path / "missing"), "--match", match, "--method", "x",
                            "--out", str(tmp_path / "x.zip")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "missing" in err


def test_ids_the_match_does_not_map_or_above_k_are_refused_in_one_line(tmp_path, capsys):
    pred_dir, _ = make_predictions(tmp_path)
    raw = np.zeros((10, 12), np.int32)
    raw[3:5, 3:5] = 3  # K = 2: id 3 is mapped by no square match; the official evaluator raises KeyError on it
    write_label_png(os.path.join(pred_dir, "n002", "img1.png"), raw)
    out = tmp_path / "result.zip"
    with pytest.raises(SubmissionError, match=r"1 predictions hold ids not mapped by .* or above K=2 .*: ids 3 in "
                                              r"n002/img1\.png"):
        pack_submission(pred_dir, str(out), MATCH, "demo")
    # A match that does map 3 but to class 3 > K (--num-classes 2) is refused too.
    with pytest.raises(SubmissionError, match=r"maps ids 3 to classes above K=2"):
        pack_submission(pred_dir, str(out), {**MATCH, 3: 3}, "demo", num_classes=2)
    # Mapped within K (a 3-class match): packed.
    assert pack_submission(pred_dir, str(out), {**MATCH, 3: 3}, "demo")["num_pngs"] == 4
    out.unlink()
    code = submission_main(["--pred", pred_dir, "--match", write_match(tmp_path), "--method", "x", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "ids 3 in n002/img1.png" in err and "match.json" in err
    assert not out.exists()
