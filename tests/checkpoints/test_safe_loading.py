"""Checkpoints cannot run code: crafted pickles (plain, Jittor, PyTorch zip and legacy) are refused by every
loader with one line naming the file and the global, and nothing in them runs; this project's own format
(safetensors + JSON) round-trips exactly and reads without jittor or this package; earlier `checkpoint.pth.tar`
files still load, weights-only."""
import builtins
import hashlib
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from uss.checkpoints.native import CheckpointError, UnsafeCheckpointError, load_checkpoint, save_checkpoint
from uss.checkpoints.pickle_reader import read_pickled
from tests.helpers import ROOT



class Payload:
    """Pickles as a call of `func(*args)`: what a malicious checkpoint does on load."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def payloads(marker: str, tensor=torch.zeros) -> dict:
    """The five kinds of crafted content, each creating `marker` if it ever runs."""
    import subprocess as sp

    weights = {"conv1.weight": tensor((2, 3))}
    return {
        "reduce-shell": {"state_dict": weights, "epoch": Payload(os.system, f"touch {marker}")},
        "builtins-eval": Payload(builtins.eval, f"open({marker!r}, 'w').close()"),
        "subprocess": {"state_dict": Payload(sp.call, ["touch", marker])},
        "nested-in-state-dict": {"state_dict": {**weights,
                                                "layer1.0.conv1.weight": Payload(os.system, f"touch {marker}")}},
        "in-optimizer-state": {"state_dict": weights, "optimizer": {"state": {0: {"momentum_buffer": Payload(
            os.system, f"touch {marker}")}}, "param_groups": [{"lr": 0.1, "params": [0]}]}},
    }


REFUSED = {"reduce-shell": "posix.system", "builtins-eval": "builtins.eval", "subprocess": "subprocess.call",
           "nested-in-state-dict": "posix.system", "in-optimizer-state": "posix.system"}
CONTAINERS = ("pickle", "jittor-pickle", "torch-zip", "torch-legacy")


def write(container: str, obj, path: str) -> str:
    if container == "pickle":
        with open(path, "wb") as handle:
            pickle.dump(obj, handle, protocol=2)
    elif container == "jittor-pickle":  # jt.save's layout: pickle + SHA-1 + trailer
        data = pickle.dumps(obj, 4)
        with open(path, "wb") as handle:
            handle.write(data + hashlib.sha1(data).digest() + b"HCAJSLHD")
    else:
        torch.save(obj, path, _use_new_zipfile_serialization=container == "torch-zip")
    return path


@pytest.fixture
def crafted(tmp_path):
    """(kind, container) -> (path, marker) for every crafted file."""
    marker = str(tmp_path / "pwned")
    files = {}
    for container in CONTAINERS:
        for kind, obj in payloads(marker, torch.zeros if container.startswith("torch") else np.zeros).items():
            files[kind, container] = write(container, obj, str(tmp_path / f"{kind}-{container}.pth.tar"))
    assert not os.path.exists(marker)
    return files, marker


def test_every_crafted_file_is_refused_by_the_checkpoint_reader(crafted):
    files, marker = crafted
    for (kind, container), path in files.items():
        with pytest.raises(UnsafeCheckpointError) as error:
            load_checkpoint(path)
        message = str(error.value)
        assert "\n" not in message and message.startswith(path + ": refused to load")
        assert f"global '{REFUSED[kind]}'" in message, (kind, container, message)
        assert not os.path.exists(marker), (kind, container)


def test_every_crafted_file_is_refused_by_the_sam_loader(crafted):
    from uss.checkpoints.sam import CheckpointError as SamCheckpointError
    from uss.checkpoints.sam import read_state_dict

    files, marker = crafted
    for (kind, container), path in files.items():
        with pytest.raises(SamCheckpointError, match=rf"cannot read SAM checkpoint .*{kind}.*refused to load global "
                                                     rf"'{REFUSED[kind]}'"):
            read_state_dict(path)
    assert not os.path.exists(marker)


def test_every_crafted_file_is_refused_by_the_weight_loaders(crafted, tmp_path):
    """--pretrained of train_2 / train_4 and --checkpoint of test.py / inference, and resume."""
    from uss.checkpoints.trained import load_pretrained_backbone
    from uss.models.segmentation import build_segmentation_model
    from uss.checkpoints.trained import load_finetuned, load_pixel_attention_model
    from uss.checkpoints import native as checkpoint

    files, marker = crafted
    model = build_segmentation_model("resnet18", 3)
    for loader in (lambda p: load_pretrained_backbone(model, p), load_finetuned, load_pixel_attention_model,
                   lambda p: checkpoint.load_pretrained(model, p)):
        for kind in REFUSED:
            with pytest.raises(UnsafeCheckpointError, match=REFUSED[kind]):
                loader(files[kind, "torch-zip"])
    dump = tmp_path / "dump"
    dump.mkdir()
    (dump / "checkpoint.pth.tar").write_bytes(open(files["in-optimizer-state", "pickle"], "rb").read())
    with pytest.raises(UnsafeCheckpointError, match="checkpoint.pth.tar: refused"):
        checkpoint.resume_training_state(str(dump), model)
    assert not os.path.exists(marker)


def _craft_zip(tmp_path, name: str) -> tuple:
    marker = str(tmp_path / f"pwned-{name}")
    return write("torch-zip", payloads(marker)["nested-in-state-dict"], str(tmp_path / f"{name}.pth.tar")), marker


def _run(args, cwd=ROOT):
    return subprocess.run([sys.executable] + args, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_entry_points_refuse_crafted_files(tmp_path):
    """test.py --checkpoint / --sam-checkpoint and main_pixel_finetuning.py --pretrained: one line, nothing runs."""
    from uss.data.label_png import write_label_png
    from uss.data.toy import generate
    from uss.models.segmentation import build_segmentation_model
    from uss.checkpoints import native as checkpoint

    data = str(tmp_path / "toy")
    generate(data, classes=2, size=32, train_per_class=2, val_per_class=1, test_per_class=1, progress=False)
    labels = tmp_path / "labels"
    for folder, _, names in os.walk(os.path.join(data, "train")):
        for name in names:
            target = (labels / os.path.relpath(folder, os.path.join(data, "train"))
                      / (os.path.splitext(name)[0] + ".png"))
            target.parent.mkdir(parents=True, exist_ok=True)
            write_label_png(str(target), np.ones((32, 32), np.int32))
    good = str(tmp_path / "ft")
    checkpoint.save_training_state(good, 1, build_segmentation_model("resnet18", 2), None,
                                   dict(arch="resnet18", head="linear", num_classes=2))
    evil, marker = _craft_zip(tmp_path, "finetuned")
    sam, sam_marker = _craft_zip(tmp_path, "sam_vit_b_01ec64")
    pre, pre_marker = _craft_zip(tmp_path, "pretrained")
    runs = {
        "test.py --checkpoint": (["test.py", "--data", data, "--checkpoint", evil, "--proposer", "superpixel",
                                  "--out", str(tmp_path / "out1")], evil),
        "test.py --sam-checkpoint": (["test.py", "--data", data, "--checkpoint", good + "/checkpoint.safetensors",
                                      "--sam-checkpoint", sam, "--sam-model-type", "vit_tiny",
                                      "--out", str(tmp_path / "out2")], sam),
        "main_pixel_finetuning.py --pretrained": (["main_pixel_finetuning.py", "--data", data, "--pseudo-labels",
                                                   str(labels), "--pretrained", pre, "--dump-path",
                                                   str(tmp_path / "ftdump"), "--epochs", "1"], pre),
    }
    for what, (args, path) in runs.items():
        done = _run(args)
        errors = [line for line in done.stderr.splitlines() if line.strip() and not line.startswith("[")]
        assert done.returncode != 0, what
        assert any(path in line and "refused to load global 'posix.system'" in line for line in errors), \
            f"{what}: {done.stderr[-2000:]}"
    for m in (marker, sam_marker, pre_marker):
        assert not os.path.exists(m)


# ------------------------------------------------------------------------------------------ own format


def test_own_format_round_trips_exactly_and_detects_corruption(tmp_path):
    rng = np.random.default_rng(0)
    state = {"epoch": 7, "args": {"lr": 0.1 + 0.2, "crops": [2, 6], "betas": (0.9, 0.999), "name": "x", "none": None,
                                  "flag": True},
             "state_dict": {"backbone.conv1.weight": rng.normal(size=(4, 3, 3, 3)).astype(np.float32),
                            "backbone.bn1.running_var": np.float64([1e-300, 3.0]),
                            "count": np.array(5, np.int64), "mask": np.array([True, False])},
             "optimizer": {"defaults": {"param_groups": [{"values": [rng.normal(size=3), np.zeros((0, 2), np.float32)],
                                                          "lr": 1 / 3}], "n_step": 12}},
             "by_index": {0: "a", 1: np.float32(0.1)}, "__odd": 1}
    path = str(tmp_path / "checkpoint.safetensors")
    save_checkpoint(path, state)
    back = load_checkpoint(path)
    assert back["args"] == state["args"] and back["epoch"] == 7 and back["by_index"][0] == "a"
    assert type(back["by_index"][1]) is np.float32 and back["by_index"][1] == np.float32(0.1) and back["__odd"] == 1
    for key, value in state["state_dict"].items():
        assert back["state_dict"][key].dtype == value.dtype
        np.testing.assert_array_equal(back["state_dict"][key], value)
    values = back["optimizer"]["defaults"]["param_groups"][0]["values"]
    np.testing.assert_array_equal(values[0], state["optimizer"]["defaults"]["param_groups"][0]["values"][0])
    assert values[1].shape == (0, 2) and back["optimizer"]["defaults"]["param_groups"][0]["lr"] == 1 / 3
    data = bytearray(open(path, "rb").read())
    data[-5] ^= 0x01
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="broken.safetensors: checkpoint is corrupted"):
        load_checkpoint(str(broken))
    broken.write_bytes(bytes(data[:len(data) // 2]))
    with pytest.raises(CheckpointError, match="broken.safetensors: damaged safetensors file"):
        load_checkpoint(str(broken))
    with pytest.raises(TypeError, match="cannot save a Payload"):
        save_checkpoint(str(tmp_path / "x.safetensors"), {"bad": Payload(print, "x")})


def test_own_format_reads_without_jittor_or_this_package(tmp_path):
    path = str(tmp_path / "checkpoint.safetensors")
    save_checkpoint(path, {"epoch": 3, "args": {"arch": "resnet18"},
                           "state_dict": {"head.conv.weight": np.ones((2, 2))}})
    reader = ("import json, sys\nfrom safetensors import safe_open\n"
              f"with safe_open({path!r}, 'numpy') as f:\n"
              "    meta = json.loads(f.metadata()['uss'])\n"
              "    weights = {k[len('state_dict/'):]: f.get_tensor(k) for k in f.keys() "
              "if k.startswith('state_dict/')}\n"
              "assert 'jittor' not in sys.modules and 'uss' not in sys.modules\n"
              "print(meta['epoch'], meta['args']['arch'], sorted(weights), float(weights['head.conv.weight'].sum()))\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-I", "-c", reader], capture_output=True, text=True, env=env, timeout=60,
                          cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["3", "resnet18", "['head.conv.weight']", "4.0"]


def test_earlier_uss_checkpoints_load_weights_only(tmp_path):
    """A checkpoint.pth.tar of an earlier run (pickle + SHA-1 + USS-CKPT-1) still loads, and resume finds it."""
    from uss.models.segmentation import build_segmentation_model
    from uss.checkpoints import native as checkpoint

    model = build_segmentation_model("resnet18", 2)
    state = {"epoch": 4, "state_dict": {k: v.numpy() for k, v in model.state_dict().items()}, "args": {"x": 1}}
    payload = pickle.dumps(state, protocol=4)
    dump = tmp_path / "dump"
    dump.mkdir()
    (dump / "checkpoint.pth.tar").write_bytes(payload + hashlib.sha1(payload).digest() + b"USS-CKPT-1")
    epoch, loaded = checkpoint.resume_training_state(str(dump), model)
    assert epoch == 4 and loaded["args"] == {"x": 1}
    (dump / "checkpoint.pth.tar").write_bytes(payload[:-3] + b"abc" + hashlib.sha1(payload).digest() + b"USS-CKPT-1")
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        checkpoint.resume_training_state(str(dump), model)


def test_torch_tensors_of_every_layout_read_exactly(tmp_path):
    """Zip and legacy PyTorch files: dtypes (bf16 included), views, transposes, scalars, parameters, OrderedDict."""
    tensors = {"f32": torch.randn(3, 4), "f16": torch.randn(5).half(), "bf16": torch.randn(6).bfloat16(),
               "i64": torch.arange(7), "u8": torch.arange(4, dtype=torch.uint8), "bool": torch.tensor([True, False]),
               "t": torch.randn(3, 4).t(), "view": torch.arange(10.)[3:8], "scalar": torch.tensor(1.5),
               "empty": torch.zeros(0, 3), "param": torch.nn.Parameter(torch.randn(2))}
    module = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4))
    obj = {"tensors": tensors, "state_dict": module.state_dict(), "epoch": 3,
           "optimizer": torch.optim.SGD(module.parameters(), lr=0.1, momentum=0.9).state_dict()}
    for zipped in (True, False):
        path = str(tmp_path / f"t{zipped}.pth")
        torch.save(obj, path, _use_new_zipfile_serialization=zipped)
        back = read_pickled(path)
        for key, value in tensors.items():
            expected = value.detach().float().numpy() if key == "bf16" else value.detach().numpy()
            np.testing.assert_array_equal(back["tensors"][key], expected, err_msg=key)
            assert back["tensors"][key].shape == tuple(value.shape)
        assert list(back["state_dict"]) == list(module.state_dict())
        assert back["optimizer"]["param_groups"][0]["momentum"] == 0.9 and back["epoch"] == 3
