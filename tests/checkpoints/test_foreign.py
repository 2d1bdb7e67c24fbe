"""Starting from the weights users have: PASS's released PyTorch checkpoints, the 2023 challenge entry's weights/
folder (Jittor pickles), SwAV's and DINO's torchvision ResNet-50s, the official SAM layout. Each state dict is
built here with the key names, prefixes and shapes of the public code that writes it (torchvision's ResNet,
LUSSeg/PASS src/resnet.py, the challenge entry's src/resnet_uppernet50.py + mmseg UPerHead, SwAV's hub model),
not from this package's models; random values."""

import jittor as jt
import numpy as np
import pytest
import torch

from uss.checkpoints.native import CheckpointError

BN = ("weight", "bias", "running_mean", "running_var")


def bn(prefix: str, channels: int, torch_style: bool = True) -> dict:
    out = {f"{prefix}.{n}": (channels,) for n in BN}
    if torch_style:
        out[f"{prefix}.num_batches_tracked"] = ()
    return out


def torchvision_resnet(depth: int, torch_style: bool = True, fc: bool = False) -> dict:
    """Key -> shape of torchvision's resnet{depth} (the layout PASS, SwAV, DINO and the challenge entry share)."""
    bottleneck = depth >= 50
    blocks = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}[depth]
    keys = {"conv1.weight": (64, 3, 7, 7), **bn("bn1", 64, torch_style)}
    inplanes, expansion = 64, 4 if bottleneck else 1
    for stage, (planes, count) in enumerate(zip((64, 128, 256, 512), blocks), start=1):
        for block in range(count):
            p = f"layer{stage}.{block}"
            if bottleneck:
                convs = [(planes, inplanes, 1), (planes, planes, 3), (planes * 4, planes, 1)]
            else:
                convs = [(planes, inplanes, 3), (planes, planes, 3)]
            for i, (out, cin, k) in enumerate(convs, start=1):
                keys[f"{p}.conv{i}.weight"] = (out, cin, k, k)
                keys.update(bn(f"{p}.bn{i}", out, torch_style))
            if block == 0 and (stage > 1 or inplanes != planes * expansion):
                keys[f"{p}.downsample.0.weight"] = (planes * expansion, inplanes, 1, 1)
                keys.update(bn(f"{p}.downsample.1", planes * expansion, torch_style))
            inplanes = planes * expansion
    if fc:
        keys.update({"fc.weight": (1000, inplanes), "fc.bias": (1000,)})
    return keys


def pass_heads(channels: int, hidden: int, prototypes: int, torch_style: bool = True, pixelattn: bool = False) -> dict:
    """PASS's src/resnet.py heads: projection_head (Linear, BN, ReLU, Linear, affine-free BN), prototypes, fbg."""
    keys = {"projection_head.0.weight": (hidden, channels), "projection_head.0.bias": (hidden,),
            **bn("projection_head.1", hidden, torch_style), "projection_head.3.weight": (128, hidden),
            "projection_head.3.bias": (128,), "projection_head.4.running_mean": (128,),
            "projection_head.4.running_var": (128,), "prototypes.weight": (prototypes, 128)}
    if torch_style:
        keys["projection_head.4.num_batches_tracked"] = ()
    if pixelattn:
        keys.update({"fbg.atten.0.weight": (channels, channels, 1, 1), "fbg.atten.0.bias": (channels,),
                     **bn("fbg.atten.1", channels, torch_style), "fbg.atten.3.weight": (channels, channels, 1, 1),
                     "fbg.atten.3.bias": (channels,), **bn("fbg.atten.4", channels, torch_style),
                     "fbg.threshold": (1, channels, 1, 1)})
    return keys


def mmseg_uperhead(prefix: str, in_channels=(256, 512, 1024, 2048), channels=512, classes=51) -> dict:
    """The challenge entry's UPerHead (mmseg ConvModule: conv without bias + bn), under `prefix`."""
    keys = {}

    def module(name, cin, k):
        keys[f"{prefix}{name}.conv.weight"] = (channels, cin, k, k)
        keys.update(bn(f"{prefix}{name}.bn", channels, torch_style=False))

    for i in range(4):
        module(f"psp_modules.{i}.1", in_channels[-1], 1)
    module("bottleneck", in_channels[-1] + 4 * channels, 3)
    for i, cin in enumerate(in_channels[:-1]):
        module(f"lateral_convs.{i}", cin, 1)
        module(f"fpn_convs.{i}", channels, 3)
    module("fpn_bottleneck", 4 * channels, 3)
    keys.update({f"{prefix}conv_seg.weight": (classes, channels, 1, 1), f"{prefix}conv_seg.bias": (classes,)})
    return keys


def values(shapes: dict, seed: int = 0, prefix: str = "", as_torch: bool = False) -> dict:
    rng = np.random.default_rng(seed)
    out = {}
    for key, shape in shapes.items():
        array = (np.array(7, np.int64) if key.endswith("num_batches_tracked")
                 else rng.normal(size=shape).astype(np.float32) * 0.1 + (1.0 if key.endswith("running_var") else 0))
        out[prefix + key] = torch.from_numpy(array) if as_torch else array
    return out


def assert_loaded(model, weights: dict, rename=lambda k: k):
    own = model.state_dict()
    checked = 0
    for key, value in weights.items():
        if rename(key) in own and not key.endswith("num_batches_tracked"):
            np.testing.assert_array_equal(own[rename(key)].numpy(), np.asarray(value), err_msg=key)
            checked += 1
    assert checked > 0


def strip(prefix):
    return lambda k: ("backbone." + k[len(prefix):]
                      if not k[len(prefix):].startswith(("projection", "prototypes", "fbg", "last_layer"))
                      else k[len(prefix):])


# ------------------------------------------------------------------------------------------------ PASS

@pytest.fixture(scope="module")
def pass_files(tmp_path_factory):
    """PASS main's torch.save({'epoch', 'state_dict': DDP model.state_dict(), 'optimizer'}) files: pretrained,
    pixelatt and finetuning, ResNet-18 (module. prefix)."""
    root = tmp_path_factory.mktemp("pass")
    backbone = torchvision_resnet(18)
    extras = {"projection_head_shallow.projection_head_shallow3.0.weight": (512, 256),
              "projection_head_pixel.0.weight": (512, 512, 1, 1), "predictor_head_pixel.0.weight": (128, 128, 1, 1)}
    layouts = {"pass50_pretrained": {**backbone, **pass_heads(512, 512, 500), **extras},
               "pass50_pixelatt": {**backbone, **pass_heads(512, 512, 500, pixelattn=True)},
               "pass50_finetuning": {**backbone, "last_layer.weight": (51, 512, 1, 1), "last_layer.bias": (51,)}}
    files = {}
    for seed, (name, shapes) in enumerate(layouts.items()):
        state = values(shapes, seed, prefix="module.", as_torch=True)
        files[name] = (str(root / f"{name}.pth.tar"), state)
        torch.save({"epoch": 200, "state_dict": state, "optimizer": {"state": {}, "param_groups": [{"lr": 0.6}]}},
                   files[name][0])
    return files


def test_pass_pretrained_starts_pixel_attention_and_finetuning(pass_files):
    from uss.models import build_model
    from uss.checkpoints.trained import load_pretrained_backbone
    from uss.models.segmentation import build_segmentation_model
    from uss.checkpoints.native import load_pretrained

    path, state = pass_files["pass50_pretrained"]
    model = build_model("resnet18", "pixel_attention", n_prototypes=500, feat_dim=128, hidden_dim=512)
    loaded = load_pretrained(model, path, ("backbone.", "projection_head.", "prototypes."))
    assert loaded == len([k for k in model.state_dict() if not k.startswith("fbg.")])
    assert_loaded(model, state, strip("module."))
    seg = build_segmentation_model("resnet18", 50, "upernet")
    assert load_pretrained_backbone(seg, path) == len(seg.backbone.state_dict())
    assert_loaded(seg, state, strip("module."))


def test_pass_pixelatt_and_finetuning_releases_configure_themselves(pass_files):
    from uss.checkpoints.trained import load_finetuned, load_pixel_attention_model

    path, state = pass_files["pass50_pixelatt"]
    model = load_pixel_attention_model(path)
    assert model.depth == 18 and tuple(model.prototypes.weight.shape) == (500, 128)
    assert_loaded(model, state, strip("module."))
    path, state = pass_files["pass50_finetuning"]
    model, config = load_finetuned(path)
    assert (config["arch"], config["head"], config["num_classes"]) == ("resnet18", "linear", 50)
    np.testing.assert_array_equal(model.head.conv.weight.numpy(), state["module.last_layer.weight"].numpy())


def test_wrong_architecture_names_the_problem_keys(pass_files):
    from uss.checkpoints.trained import load_pretrained_backbone
    from uss.models.segmentation import build_segmentation_model

    with pytest.raises(CheckpointError, match=r"pass50_pretrained.pth.tar: .*missing.*backbone\.layer1\.0\.conv3"):
        load_pretrained_backbone(build_segmentation_model("resnet50", 3), pass_files["pass50_pretrained"][0])


# ------------------------------------------------------------------------------------ challenge weights/

@pytest.fixture(scope="module")
def challenge_weights(tmp_path_factory):
    """The challenge entry's weights/ folder, written as its scripts write it: jt.save of model.state_dict()
    (jittor Vars; PASS-Jittor names, no module. prefix) with epoch and optimizer; np.save of the centroids;
    the SAM weights under a .pth.tar name."""
    from uss.sam import build_sam

    weights = tmp_path_factory.mktemp("challenge") / "weights"
    weights.mkdir()

    def jt_save(name, shapes, seed):
        state = values(shapes, seed)
        jt.save({"epoch": 20, "state_dict": {k: jt.array(v) for k, v in state.items()},
                 "optimizer": {"defaults": {"lr": 0.0006, "momentum": 0.9, "param_groups": [{"values": []}]}}},
                str(weights / name))
        return state

    states = {
        "infer_pixel_attnetion_checkpoint.pth.tar": jt_save(
            "infer_pixel_attnetion_checkpoint.pth.tar",
            {**torchvision_resnet(18, False), **pass_heads(512, 512, 500, False, pixelattn=True)}, 1),
        "train_pixelattention_checkpoint.pth.tar": jt_save(
            "train_pixelattention_checkpoint.pth.tar",
            {**torchvision_resnet(50, False), **pass_heads(2048, 512, 500, False, pixelattn=True)}, 2),
        "checkpoint.pth.tar": jt_save("checkpoint.pth.tar",
                                      {**torchvision_resnet(50, False), **mmseg_uperhead("last_layer.")}, 3),
    }
    np.save(weights / "centroids.npy", np.random.default_rng(4).normal(size=(50, 512)).astype(np.float32))
    jt.set_global_seed(0)
    sam = {k: torch.from_numpy(v.numpy()) for k, v in build_sam("vit_tiny").state_dict().items()}
    torch.save(sam, str(weights / "sam_vit_b_01ec64.pth.tar"))
    return weights, states, sam


def test_challenge_pixel_attention_and_centroids_start_train_3(challenge_weights):
    from uss.labeling.labelers import load_centroids
    from uss.checkpoints.trained import load_pixel_attention_model

    weights, states, _ = challenge_weights
    model = load_pixel_attention_model(str(weights / "infer_pixel_attnetion_checkpoint.pth.tar"))
    assert model.depth == 18
    assert_loaded(model, states["infer_pixel_attnetion_checkpoint.pth.tar"], strip(""))
    assert load_centroids(str(weights / "centroids.npy")).shape == (50, 512)


def test_challenge_resnet50_starts_train_4(challenge_weights):
    from uss.checkpoints.trained import load_pretrained_backbone
    from uss.models.segmentation import build_segmentation_model

    weights, states, _ = challenge_weights
    seg = build_segmentation_model("resnet50", 50, "upernet")
    assert load_pretrained_backbone(seg, str(weights / "train_pixelattention_checkpoint.pth.tar")) == \
        len(seg.backbone.state_dict())
    assert_loaded(seg, states["train_pixelattention_checkpoint.pth.tar"], strip(""))


def test_challenge_finetuned_upernet_and_sam_load_for_test_py(challenge_weights):
    from uss.sam import build_sam
    from uss.checkpoints.trained import load_finetuned

    weights, states, sam = challenge_weights
    model, config = load_finetuned(str(weights / "checkpoint.pth.tar"))
    assert (config["arch"], config["head"], config["num_classes"]) == ("resnet50", "upernet", 50)
    assert_loaded(model, states["checkpoint.pth.tar"],
                  lambda k: "head." + k[len("last_layer."):] if k.startswith("last_layer.") else "backbone." + k)
    loaded = build_sam("vit_tiny", str(weights / "sam_vit_b_01ec64.pth.tar")).state_dict()
    for key in list(sam)[:20]:
        np.testing.assert_array_equal(loaded[key].numpy(), sam[key].numpy(), err_msg=key)


# ---------------------------------------------------------------------------------------------- SwAV / DINO

@pytest.fixture(scope="module")
def selfsup_files(tmp_path_factory):
    """SwAV's swav_800ep_pretrain.pth.tar (legacy torch format, a bare DDP state dict: module. + torchvision names
    + projection_head 2048-2048-128 without a final BN + 3000 prototypes) and DINO's dino_resnet50_pretrain.pth
    (zip format, plain torchvision names without fc)."""
    root = tmp_path_factory.mktemp("selfsup")
    heads = {k: v for k, v in pass_heads(2048, 2048, 3000).items() if not k.startswith("projection_head.4")}
    swav = values({**torchvision_resnet(50), **heads}, 5, prefix="module.", as_torch=True)
    torch.save(swav, str(root / "swav_800ep_pretrain.pth.tar"), _use_new_zipfile_serialization=False)
    dino = values(torchvision_resnet(50), 6, as_torch=True)
    torch.save(dino, str(root / "dino_resnet50_pretrain.pth"))
    return {"swav": (str(root / "swav_800ep_pretrain.pth.tar"), swav),
            "dino": (str(root / "dino_resnet50_pretrain.pth"), dino)}


def test_swav_starts_pixel_attention(selfsup_files, capsys):
    from uss.models import build_model
    from uss.checkpoints.native import load_pretrained

    path, state = selfsup_files["swav"]
    model = build_model("resnet50", "pixel_attention", n_prototypes=3000, feat_dim=128, hidden_dim=2048)
    load_pretrained(model, path, ("backbone.", "projection_head.", "prototypes."))
    assert "projection_head.4.running_mean" in capsys.readouterr().err  # SwAV has no final BN: starts fresh
    assert_loaded(model, state, strip("module."))


def test_dino_and_swav_start_finetuning_and_dino_cannot_start_pixel_attention(selfsup_files):
    from uss.models import build_model
    from uss.checkpoints.trained import load_pretrained_backbone
    from uss.models.segmentation import build_segmentation_model
    from uss.checkpoints.native import load_pretrained

    seg = build_segmentation_model("resnet50", 50, "linear")
    for name in ("dino", "swav"):
        path, state = selfsup_files[name]
        assert load_pretrained_backbone(seg, path) == len(seg.backbone.state_dict())
        assert_loaded(seg, state, strip("module." if name == "swav" else ""))
    model = build_model("resnet50", "pixel_attention", n_prototypes=3000, feat_dim=128, hidden_dim=2048)
    with pytest.raises(CheckpointError, match=r"dino_resnet50_pretrain.pth: .*missing \['projection_head"):
        load_pretrained(model, selfsup_files["dino"][0], ("backbone.", "projection_head.", "prototypes."))
