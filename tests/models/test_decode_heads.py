"""Decode heads: UPerNet's output stride 4 for every backbone's channels, mmsegmentation's parameter names,
PyTorch-exact adaptive pooling (also for maps smaller than the pooled size), trainability; the base head's dropout,
classifier and init; head options from the command line to the saved checkpoint."""
import numpy as np
import pytest

import uss  # noqa: F401  (jittor environment first)
from uss.models.decode_heads import (HEADS, AdaptiveAvgPool2d, LinearHead, PyramidPooling, UPerNetHead,
                                     adaptive_pool_matrix, build_head, head_options)
from uss.losses.segmentation import segmentation_loss
from uss.models.segmentation import build_segmentation_model
from uss.stages import finetune

import jittor as jt

jt.flags.use_cuda = jt.has_cuda

R18 = [64, 128, 256, 512]
R50 = [256, 512, 1024, 2048]
K = 4


def _features(channels, height, width, batch=2, seed=0):
    """Random C2..C5 maps of a height x width input (strides 4, 8, 16, 32)."""
    rng = np.random.default_rng(seed)
    return [jt.array(rng.normal(size=(batch, c, height // s, width // s)).astype(np.float32))
            for c, s in zip(channels, (4, 8, 16, 32))]


@pytest.mark.parametrize("channels", [R18, R50], ids=["r18", "r50"])
def test_output_shape_is_stride_4_with_k_plus_1_channels(channels):
    head = build_head("upernet", channels, K)
    head.eval()
    assert isinstance(head, UPerNetHead) and head.output_stride == 4 and "upernet" in HEADS
    out = head(_features(channels, 128, 96))
    assert tuple(out.shape) == (2, K + 1, 32, 24)
    assert np.isfinite(out.numpy()).all()


def test_whole_model_output_and_backbone_channels():
    for arch, channels in (("resnet18", R18), ("resnet50", R50)):
        model = build_segmentation_model(arch, K, "upernet")
        model.eval()
        assert model.head.in_channels == channels  # derived from the backbone's out_channels
        with jt.no_grad():
            assert tuple(model(jt.randn(1, 3, 96, 64)).shape) == (1, K + 1, 24, 16)


def test_parameter_names_follow_mmsegmentation():
    names = set(UPerNetHead(R50, K).state_dict())
    for i in range(4):
        assert f"psp_modules.{i}.1.conv.weight" in names and f"psp_modules.{i}.1.bn.running_var" in names
    for i in range(3):
        assert f"lateral_convs.{i}.conv.weight" in names and f"fpn_convs.{i}.bn.weight" in names
    assert {"bottleneck.conv.weight", "fpn_bottleneck.conv.weight", "conv_seg.weight", "conv_seg.bias"} <= names
    assert not any(n.endswith("conv.bias") for n in names)  # convs followed by BN have no bias
    head = UPerNetHead(R50, K)
    shapes = {k: tuple(v.shape) for k, v in head.state_dict().items()}
    assert shapes["psp_modules.0.1.conv.weight"] == (512, 2048, 1, 1)
    assert shapes["bottleneck.conv.weight"] == (512, 2048 + 4 * 512, 3, 3)
    assert shapes["lateral_convs.0.conv.weight"] == (512, 256, 1, 1)
    assert shapes["fpn_convs.2.conv.weight"] == (512, 512, 3, 3)
    assert shapes["fpn_bottleneck.conv.weight"] == (512, 4 * 512, 3, 3)
    assert shapes["conv_seg.weight"] == (K + 1, 512, 1, 1)
    assert float(np.abs(head.conv_seg.bias.numpy()).max()) == 0.0
    model = build_segmentation_model("resnet18", K, "upernet")
    assert all(k.startswith(("backbone.", "head.")) for k in model.state_dict())
    assert "head.psp_modules.3.1.conv.weight" in model.state_dict()


def test_pyramid_pooling_sizes_and_pytorch_bins():
    head = UPerNetHead(R18, K, channels=16)
    head.eval()
    for size in ((7, 5), (2, 3), (1, 1)):  # also smaller than the largest pooled size
        c5 = jt.randn(2, 512, *size)
        pooled = head.psp_modules.pooled(c5)
        assert [tuple(p.shape) for p in pooled] == [(2, 16, s, s) for s in (1, 2, 3, 6)]
        assert [tuple(p.shape) for p in head.psp_modules(c5)] == [(2, 16) + size] * 4  # upsampled back
        assert tuple(head.psp_forward(c5).shape) == (2, 16) + size
    # PyTorch's adaptive bins: start floor(i*in/out), end ceil((i+1)*in/out), overlapping when needed
    np.testing.assert_allclose(adaptive_pool_matrix(3, 5), [[.5, .5, 0, 0, 0], [0, 1 / 3, 1 / 3, 1 / 3, 0],
                                                            [0, 0, 0, .5, .5]], rtol=1e-6)
    np.testing.assert_allclose(adaptive_pool_matrix(3, 2), [[1, 0], [.5, .5], [0, 1]])
    x = np.random.default_rng(0).normal(size=(1, 2, 7, 5)).astype(np.float32)
    got = AdaptiveAvgPool2d(3)(jt.array(x)).numpy()
    rows, cols = [(0, 3), (2, 5), (4, 7)], [(0, 2), (1, 4), (3, 5)]
    expected = np.array([[[x[0, c, r0:r1, c0:c1].mean() for c0, c1 in cols] for r0, r1 in rows] for c in range(2)])
    np.testing.assert_allclose(got[0], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # trains
def test_a_few_finetuning_steps_reduce_the_loss_on_a_fixed_batch():
    jt.set_global_seed(0)
    model = build_segmentation_model("resnet18", 2, "upernet")
    model.train()
    rng = np.random.default_rng(0)
    images = rng.normal(size=(2, 3, 64, 64)).astype(np.float32)
    labels = np.zeros((2, 32, 32), np.int32)
    labels[:, 8:24, 8:24] = 1
    labels[1, :, :4] = 2
    labels[0, 0, :] = 1000  # ignored
    images[:, :, 16:48, 16:48] += 1.5  # the object is visible in the image
    optimizer = jt.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-6)
    losses = []
    for _ in range(6):
        loss, count, _ = segmentation_loss(model, jt.array(images), jt.array(labels))
        optimizer.step(loss)
        losses.append(loss.item())
    assert count.item() == 2 * 32 * 32 - 32
    assert losses[-1] < 0.7 * losses[0], losses


def test_head_choice_reaches_the_command_lines():
    from uss.stages import inference

    assert "upernet" in finetune.build_parser().parse_args(
        ["--data", "d", "--pseudo-labels", "p", "--pretrained", "x", "--dump-path", "o", "--head", "upernet"]).head
    assert inference.build_parser().parse_args(
        ["--checkpoint", "c", "--data", "d", "--out", "o", "--head", "upernet"]).head == "upernet"


def test_pyramid_pooling_is_a_module_of_its_own():
    """A PSP-style head can reuse it: own scales and channels, mmsegmentation's PPM names, maps at the input size."""
    ppm = PyramidPooling(8, 4, (1, 3))
    ppm.eval()
    assert set(ppm.state_dict()) >= {"0.1.conv.weight", "1.1.bn.running_mean"} and ppm.pool_scales == (1, 3)
    x = jt.randn(2, 8, 5, 7)
    maps = ppm(x)
    assert [tuple(m.shape) for m in maps] == [(2, 4, 5, 7)] * 2
    # scale 1 is the global mean through the 1x1 conv-BN-ReLU, the same at every pixel
    np.testing.assert_allclose(maps[0].numpy(), np.broadcast_to(ppm[0](x).numpy(), (2, 4, 5, 7)), rtol=1e-6)
    with pytest.raises(ValueError, match="pool scales"):
        PyramidPooling(8, 4, (0, 2))


def test_base_head_owns_dropout_classifier_and_init():
    linear, upernet = LinearHead(R18, K), UPerNetHead(R18, K, channels=16)
    assert linear.classifier is linear.conv and upernet.classifier is upernet.conv_seg
    assert set(linear.state_dict()) == {"conv.weight", "conv.bias"}  # PASS's last_layer loads as head.conv
    assert isinstance(linear.dropout, jt.nn.Identity) and isinstance(upernet.dropout, jt.nn.Dropout2d)
    assert upernet.dropout.p == 0.1 and isinstance(UPerNetHead(R18, K, dropout_ratio=0.0).dropout, jt.nn.Identity)
    for head in (linear, upernet):  # normal init: N(0, 0.01) weights, zero bias
        weight = head.classifier.weight.numpy()
        assert abs(float(weight.std()) - 0.01) < 0.003 and float(np.abs(head.classifier.bias.numpy()).max()) == 0.0
    inner = upernet.fpn_bottleneck.conv.weight.numpy()  # kaiming fan_out: std sqrt(2 / (out * 3 * 3))
    assert abs(float(inner.std()) / np.sqrt(2.0 / (16 * 9)) - 1.0) < 0.1
    features = _features(R18, 64, 64)
    dropped = LinearHead(R18, K, dropout_ratio=0.5)
    dropped.train()
    assert not np.allclose(dropped(features).numpy(), dropped.conv(features[-1]).numpy())
    dropped.eval()
    np.testing.assert_allclose(dropped(features).numpy(), dropped.conv(features[-1]).numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="dropout_ratio"):
        LinearHead(R18, K, dropout_ratio=1.0)


def test_head_options_reach_the_model_and_older_checkpoints_get_the_defaults():
    args = finetune.build_parser().parse_args(
        ["--data", "d", "--pseudo-labels", "p", "--pretrained", "x", "--dump-path", "o", "--head", "upernet",
         "--head-dropout", "0.2", "--head-channels", "16", "--pool-scales", "1", "2", "4"])
    options = head_options(vars(args))
    assert options == {"classifier_init": "normal", "dropout_ratio": 0.2, "channels": 16, "pool_scales": (1, 2, 4)}
    head = build_segmentation_model("resnet18", K, "upernet", **options).head
    assert head.pool_scales == (1, 2, 4) and head.dropout.p == 0.2 and head.channels == 16
    defaults = vars(finetune.build_parser().parse_args(
        ["--data", "d", "--pseudo-labels", "p", "--pretrained", "x", "--dump-path", "o", "--head", "upernet"]))
    assert head_options(defaults) == head_options({"head": "upernet"}) == {
        "classifier_init": "normal", "channels": 512, "pool_scales": (1, 2, 3, 6)}  # dropout: the head's own 0.1
    assert head_options({"head": "linear", "head_dropout": None}) == {"classifier_init": "normal"}
