"""The prediction path cannot be taken down by its loader: images are decoded by threads of the predicting
process (nothing is forked from a process running jittor), and a run killed part-way resumes without redoing
the finished images."""
import multiprocessing
import os
import signal
import sys

import pytest

from tests.helpers import ROOT, kill_after_files, random_finetuned_checkpoint
from uss.data.split import ImageNetSSplit
from uss.data.toy import generate as make_toy



@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("inference")
    data = str(base / "toy")
    make_toy(data, classes=3, size=64, train_per_class=1, val_per_class=6, test_per_class=1, progress=False)
    return {"data": data, "ckpt": random_finetuned_checkpoint(str(base / "ft"), 3)}


def _pngs(folder) -> dict:
    return {os.path.relpath(os.path.join(d, f), folder): open(os.path.join(d, f), "rb").read()
            for d, _, files in os.walk(folder) for f in files if f.endswith(".png")}


def test_prediction_forks_no_loader_process(setup, tmp_path, monkeypatch):
    from uss.checkpoints.trained import load_finetuned
    from uss.prediction import predict_split

    def refuse(self):
        raise AssertionError(f"a process was started during prediction: {self}")

    monkeypatch.setattr(multiprocessing.Process, "start", refuse)
    model, _ = load_finetuned(setup["ckpt"])
    split = ImageNetSSplit(setup["data"], "validation")
    summary = predict_split(model, split, str(tmp_path / "out"), short_side=64, workers=2, progress=False)
    assert summary.written == len(split) == 18 and not summary.failed
    again = predict_split(model, split, str(tmp_path / "out"), short_side=64, workers=2, progress=False)
    assert again.written == 0 and again.skipped == len(split)


def test_killed_prediction_resumes_without_redoing_finished_images(setup, tmp_path):
    command = [sys.executable, "-m", "uss.stages.inference", "--checkpoint", setup["ckpt"], "--data", setup["data"],
               "--split", "validation", "--short-side", "64", "--quiet"]
    reference = tmp_path / "reference"
    from uss.stages.inference import main

    assert main(command[3:] + ["--out", str(reference)]) == 0
    out = tmp_path / "killed"
    assert kill_after_files(command + ["--out", str(out)], str(out), 3) == -signal.SIGKILL
    finished = _pngs(out)
    assert 0 < len(finished) < 18
    stamps = {name: os.stat(out / name).st_mtime_ns for name in finished}
    import subprocess

    done = subprocess.run(command + ["--out", str(out)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert f"{18 - len(finished)} written" in done.stdout and f"{len(finished)} kept" in done.stdout
    assert {name: os.stat(out / name).st_mtime_ns for name in finished} == stamps  # not rewritten
    assert _pngs(out) == _pngs(reference)
