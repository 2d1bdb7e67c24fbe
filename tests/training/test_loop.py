"""The one training loop (uss.training.loop) with a minimal task; the same bad input gives the same one-line error
in every training stage; one error hierarchy; fine-tuning's training-crop scores."""
import argparse
import json
import os

import numpy as np
import pytest

import uss  # noqa: F401  (jittor environment first)
from uss.errors import CheckpointError, InputError, run_cli
from uss.evaluation.metrics import confusion_scores
from uss.options import training_run
from uss.training.loop import TrainingTask

import jittor as jt
from jittor import nn


class _Batches:
    """An epoch-aware loader of fixed (x, y, bad-file list) batches."""

    def __init__(self, n: int):
        rng = np.random.default_rng(0)
        self.batches = [(jt.array(rng.normal(size=(4, 2)).astype(np.float32)),
                         jt.array(rng.normal(size=(4, 1)).astype(np.float32)), []) for _ in range(n)]
        self.epochs = []

    def set_epoch(self, epoch):
        self.epochs.append(epoch)

    def __iter__(self):
        return iter(self.batches)


class RegressionTask(TrainingTask):
    """A linear regression on fixed batches that records which hooks ran."""

    def __init__(self, args, events):
        jt.set_global_seed(0)
        super().__init__("regression", nn.Linear(2, 1))
        self.batch_size, self.events = args.batch_size, events

    def dataset(self, split):
        return _Batches(len(split) // self.batch_size)

    def describe(self, split):
        return f"regression on {len(split)} images"

    def start(self, log, start_epoch):
        self.events.append(("start", start_epoch))

    def begin_epoch(self, epoch):
        self.events.append(("begin", epoch))

    def step(self, batch, iteration, optimizer):
        x, y = batch
        loss = ((self.model(x) - y) ** 2).mean()
        optimizer.step(loss)
        return {"loss": loss.item(), "half": 0.5}

    def end_epoch(self, epoch, means, last_lr):
        return {"lr": last_lr}

    def saved(self, epoch):
        self.events.append(("saved", epoch))


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    from uss.data.toy import generate

    data = str(tmp_path_factory.mktemp("loop") / "toy")
    generate(data, classes=2, size=32, train_per_class=4, val_per_class=1, test_per_class=1, progress=False)
    return data


def _fit(task, args):
    from uss.training.loop import fit

    return fit(task, training_run(args))


def _args(data, dump, epochs, **overrides):
    args = argparse.Namespace(data=data, split="train", dump_path=dump, epochs=epochs, batch_size=4, workers=0,
                              skip_bad_files=False, max_iters_per_epoch=0, base_lr=0.1, final_lr=0.01,
                              schedule="cosine", poly_power=0.9, warmup_epochs=0, start_warmup=0.0, wd=0.0,
                              momentum=0.9, larc=0.0, seed=0)
    for key, value in overrides.items():
        setattr(args, key, value)
    return args


def _records(dump):
    with open(os.path.join(dump, "log.jsonl")) as handle:
        return [json.loads(line) for line in handle]


def test_loop_runs_hooks_records_epochs_and_resumes(toy, tmp_path, capsys):
    from uss.checkpoints.native import load_checkpoint
    from uss.training.schedule import warmup_cosine

    dump = str(tmp_path / "dump")
    events = []
    path = _fit(RegressionTask(_args(toy, dump, 2), events), _args(toy, dump, 2))
    assert events == [("start", 0), ("begin", 0), ("saved", 0), ("begin", 1), ("saved", 1)]
    records = _records(dump)
    assert [(r["stage"], r["epoch"], r["iterations"], r["half"]) for r in records] == [("regression", 1, 2, 0.5),
                                                                                         ("regression", 2, 2, 0.5)]
    lrs = warmup_cosine(0.1, 0.01, 2, 2)
    assert [r["lr"] for r in records] == [float(lrs[1]), float(lrs[3])]  # the lr of each epoch's last step
    assert all(r["loss"] > 0 and r["seconds"] > 0 for r in records)
    assert load_checkpoint(path)["epoch"] == 2
    assert "regression on 8 images (cpu, 1 rank(s), batch 4, 2 it/epoch), epochs 0->2" in capsys.readouterr().out

    events.clear()  # a finished run does nothing
    _fit(RegressionTask(_args(toy, dump, 2), events), _args(toy, dump, 2))
    assert events == [] and len(_records(dump)) == 2
    assert "complete: " in capsys.readouterr().out

    _fit(RegressionTask(_args(toy, dump, 3), events), _args(toy, dump, 3))  # more epochs continue
    assert events == [("start", 2), ("begin", 2), ("saved", 2)]
    assert [r["epoch"] for r in _records(dump)] == [1, 2, 3]


def test_zero_epochs_saves_the_initial_weights_once(toy, tmp_path):
    from uss.checkpoints.native import load_checkpoint

    dump, events = str(tmp_path / "init"), []
    task = RegressionTask(_args(toy, dump, 0), events)
    initial = {key: value.numpy().copy() for key, value in task.model.state_dict().items()}
    state = load_checkpoint(_fit(task, _args(toy, dump, 0)))
    assert state["epoch"] == 0 and events == []  # no training hook ran
    assert initial.keys() == state["state_dict"].keys()
    assert all(np.array_equal(initial[key], state["state_dict"][key]) for key in initial)
    _fit(RegressionTask(_args(toy, dump, 1), events), _args(toy, dump, 1))  # and training starts from them
    assert events[0] == ("start", 0) and load_checkpoint(os.path.join(dump, "checkpoint.safetensors"))["epoch"] == 1


def test_batch_size_must_split_across_ranks():
    from uss.training.loop import local_batch_size

    assert local_batch_size(8, 2) == 4
    with pytest.raises(InputError, match=r"^--batch-size 8 must be divisible by the number of ranks 3$"):
        local_batch_size(8, 3)


def test_too_few_images_is_the_same_one_line_error_in_every_training_stage(toy, tmp_path, capsys):
    from uss.models import build_model
    from uss.stages import finetune, pixel_attention, pretrain
    from uss.checkpoints.native import save_training_state

    small = ["--arch", "resnet18", "--width", "0.25", "--stem", "small", "--batch-size", "64", "--workers", "0"]
    swav = ["--size-crops", "32", "16", "--nmb-crops", "2", "2", "--nmb-prototypes", "4", "--hidden-mlp", "8"]
    jt.set_global_seed(0)
    save_training_state(str(tmp_path / "pre"), 1, build_model("resnet18", "pretrain", n_prototypes=4, hidden_dim=8,
                                                             width=0.25, stem="small"), None, None)
    pretrained = str(tmp_path / "pre" / "checkpoint.safetensors")
    runs = {"pretrain": (pretrain.main, swav),
            "pixel attention": (pixel_attention.main, swav + ["--pretrained", pretrained]),
            "finetune": (finetune.main, ["--pretrained", pretrained, "--pseudo-labels", str(tmp_path / "labels")])}
    errors = {}
    for stage, (main, extra) in runs.items():
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_info:
            run_cli(main, ["--data", toy, "--dump-path", str(tmp_path / stage), *small, *extra])
        assert exit_info.value.code == 2
        errors[stage] = capsys.readouterr().err
    expected = f"error: {os.path.join(toy, 'train')}: 8 images is fewer than one batch of 64\n"
    assert errors == {stage: expected for stage in runs}


def test_one_error_hierarchy_reported_on_one_line(capsys):
    from uss.evaluation.matching import MatchFileError
    from uss.checkpoints.sam import CheckpointError as SamCheckpointError
    from uss.checkpoints.native import CheckpointError as TrainingCheckpointError
    from uss.checkpoints.pickle_reader import UnsafeCheckpointError

    assert SamCheckpointError is TrainingCheckpointError is CheckpointError
    assert issubclass(CheckpointError, InputError) and issubclass(UnsafeCheckpointError, CheckpointError)
    assert issubclass(MatchFileError, InputError)

    def failing(argv):
        raise CheckpointError("SAM checkpoint x.pth does not match the model:\n  missing keys (1):\n    a.b")

    with pytest.raises(SystemExit) as exit_info:
        run_cli(failing, [])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "error: SAM checkpoint x.pth does not match the model: missing keys (1): a.b\n"


def test_confusion_scores_by_hand():
    # rows: label, columns: prediction; class 2 never occurs and does not count in the mIoU
    confusion = np.array([[3, 1, 0], [0, 2, 0], [0, 0, 0]], np.int64)
    scores = confusion_scores(confusion)
    assert scores["pixel_acc"] == pytest.approx(5 / 6)
    assert scores["miou"] == pytest.approx((3 / 4 + 2 / 3) / 2)
    assert scores["background_share"] == pytest.approx(4 / 6)
    assert confusion_scores(np.zeros((2, 2), np.int64)) == {"pixel_acc": 0.0, "miou": 0.0, "background_share": 0.0}
