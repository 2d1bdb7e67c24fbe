"""Tests for the ResNet backbone, PASS heads, PASS pretraining model and pixel attention model."""
import numpy as np
import pytest

from uss.models import (  # imports uss first: sets jittor's environment
    ConvProjectionHead,
    DeepToShallowHead,
    PASSModel,
    PixelAttentionModel,
    PixelPredictorHead,
    ProjectionHead,
    Prototypes,
    build_model,
    build_resnet,
    sample_overlap,
)
from uss.models.multicrop import resolution_groups
from uss.models.pass_model import arch_depth

import jittor as jt

jt.flags.use_cuda = jt.has_cuda


def _trainable_count(module: jt.nn.Module) -> int:
    return sum(
        int(np.prod(p.shape))
        for name, p in module.named_parameters()
        if not name.endswith(("running_mean", "running_var"))
    )


def _randn(*shape: int, seed: int = 0) -> jt.Var:
    return jt.array(np.random.default_rng(seed).normal(size=shape).astype("float32"))


@pytest.mark.parametrize(
    "depth, channels",
    [(18, [64, 128, 256, 512]), (50, [256, 512, 1024, 2048])],
)
def test_resnet_stage_shapes(depth, channels):
    net = build_resnet(depth)
    assert net.out_channels == channels
    outs = net(_randn(2, 3, 64, 64))
    assert len(outs) == 4
    for out, c, size in zip(outs, channels, (16, 8, 4, 2)):
        assert tuple(out.shape) == (2, c, size, size)


def test_resnet_torchvision_parameter_names_and_counts():
    r18 = build_resnet(18)
    keys = set(r18.state_dict().keys())
    for key in (
        "conv1.weight",
        "bn1.weight",
        "bn1.running_var",
        "layer1.0.conv1.weight",
        "layer1.1.bn2.bias",
        "layer2.0.downsample.0.weight",
        "layer2.0.downsample.1.running_mean",
        "layer4.1.conv2.weight",
    ):
        assert key in keys
    assert "layer1.0.downsample.0.weight" not in keys  # R18 layer1 keeps 64 channels
    # torchvision resnet18 / resnet50 parameter counts minus their fc layers
    assert _trainable_count(r18) == 11_689_512 - 513_000
    r50 = build_resnet(50)
    keys50 = set(r50.state_dict().keys())
    assert {"layer1.0.downsample.0.weight", "layer1.0.conv3.weight", "layer3.5.bn3.weight"} <= keys50
    assert _trainable_count(r50) == 25_557_032 - 2_049_000
    assert tuple(r50.layer1[0].conv3.weight.shape) == (256, 64, 1, 1)


def test_width_and_small_stem():
    """Width scales every stage's channels; the small stem (one 3x3/1 conv, no max-pool) keeps 4x the resolution."""
    net = build_resnet(18, width=0.25, stem="small")
    assert net.out_channels == [16, 32, 64, 128] and net.strides == [1, 2, 4, 8]
    assert tuple(net.conv1.weight.shape) == (16, 3, 3, 3)
    outs = net(_randn(2, 3, 32, 32))
    for out, c, size in zip(outs, (16, 32, 64, 128), (32, 16, 8, 4)):
        assert tuple(out.shape) == (2, c, size, size)
    r50 = build_resnet(50, width=0.5)
    assert r50.out_channels == [128, 256, 512, 1024] and r50.strides == [4, 8, 16, 32]
    assert tuple(r50.conv1.weight.shape) == (32, 3, 7, 7)
    # The defaults are the ImageNet network, parameter for parameter.
    assert _trainable_count(build_resnet(18, width=1.0, stem="imagenet")) == _trainable_count(build_resnet(18))
    with pytest.raises(ValueError, match="stem"):
        build_resnet(18, stem="tiny")
    with pytest.raises(ValueError, match="width"):
        build_resnet(18, width=0)


def test_zero_init_residual():
    net = build_resnet(18, zero_init_residual=True)
    assert np.all(net.layer1[0].bn2.weight.numpy() == 0)
    assert np.all(net.bn1.weight.numpy() == 1)
    assert np.all(build_resnet(50, zero_init_residual=True).layer2[1].bn3.weight.numpy() == 0)


def test_heads_shapes_and_names():
    head = ProjectionHead(512, 64, 128)
    assert tuple(head(_randn(4, 512)).shape) == (4, 128)
    names = set(head.state_dict().keys())
    assert {"0.weight", "1.weight", "3.weight", "4.running_mean"} <= names
    assert "4.weight" not in names  # final BN1d has no affine parameters

    conv = ConvProjectionHead(32, 16, 8)
    assert tuple(conv(_randn(2, 32, 5, 5)).shape) == (2, 8, 5, 5)
    pred = PixelPredictorHead(8)
    assert tuple(pred(_randn(2, 8, 3, 3)).shape) == (2, 8, 3, 3)
    assert "3.bias" in pred.state_dict() and "0.bias" not in pred.state_dict()

    d2s = DeepToShallowHead(32, 16, 8)
    z = d2s(_randn(3, 32, 4, 4)).numpy()
    assert z.shape == (3, 8)
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, rtol=1e-5)


def test_prototypes_normalisation():
    protos = Prototypes(16, 10)
    protos.weight.assign(_randn(10, 16) * 3.0)
    protos.normalize_prototypes()
    w = protos.weight.numpy()
    np.testing.assert_allclose(np.linalg.norm(w, axis=1), 1.0, rtol=1e-5)
    z = _randn(4, 16, seed=1)
    np.testing.assert_allclose(protos(z).numpy(), z.numpy() @ w.T, rtol=1e-5, atol=1e-6)
    assert not protos.weight.is_stop_grad()


def test_sample_overlap_picks_expected_vectors():
    # maps[n, c, y, x] = 100 n + 10 y + x (+ 1000 c); pixel centres at x = (2 j + 1) / W - 1 (align_corners=False)
    n, c, h, w = 2, 2, 3, 4
    vals = np.zeros((n, c, h, w), dtype="float32")
    for i in range(n):
        for ch in range(c):
            vals[i, ch] = 100 * i + 1000 * ch + 10 * np.arange(h)[:, None] + np.arange(w)[None, :]
    centre_x = lambda j: (2 * j + 1) / w - 1  # noqa: E731
    centre_y = lambda i: (2 * i + 1) / h - 1  # noqa: E731
    grid_q = np.zeros((1, 1, 3, 2), dtype="float32")
    grid_q[0, 0, 0] = (centre_x(0), centre_y(0))  # pixel (y=0, x=0)
    grid_q[0, 0, 1] = (centre_x(3), centre_y(1))  # pixel (y=1, x=3)
    grid_q[0, 0, 2] = ((centre_x(1) + centre_x(2)) / 2, centre_y(2))  # between x=1 and x=2 on row 2
    grid_k = np.full((1, 1, 3, 2), -2.0, dtype="float32")  # PASS's "no overlap" fill
    grid_k[0, 0, 0] = (centre_x(2), centre_y(1))
    out = sample_overlap(jt.array(vals), jt.array(grid_q), jt.array(grid_k)).numpy()
    assert out.shape == (2, 2, 1, 3)
    np.testing.assert_allclose(out[0, :, 0, 0], [0, 1000], atol=1e-4)
    np.testing.assert_allclose(out[0, :, 0, 1], [13, 1013], atol=1e-4)
    np.testing.assert_allclose(out[0, :, 0, 2], [21.5, 1021.5], atol=1e-4)
    np.testing.assert_allclose(out[1, :, 0, 0], [112, 1112], atol=1e-4)
    np.testing.assert_allclose(out[1, :, 0, 1:], 0.0, atol=1e-6)


def test_resolution_groups():
    crops = [jt.zeros((1, 3, 8, 8))] * 2 + [jt.zeros((1, 3, 4, 4))] * 3 + [jt.zeros((1, 3, 8, 8))]
    assert resolution_groups(crops) == [(0, 2), (2, 5), (5, 6)]


def test_pass_model_outputs():
    model = build_model("resnet18", n_prototypes=10, hidden_dim=32)
    assert isinstance(model, PASSModel) and model.shallow_stages == (3,)
    b = 2
    crops = [_randn(b, 3, 64, 64, seed=s) for s in range(2)] + [_randn(b, 3, 32, 32, seed=s) for s in (2, 3)]
    rng = np.random.default_rng(0)
    grid_q = jt.array(rng.uniform(-1, 1, (b, 7, 7, 2)).astype("float32"))
    grid_k = jt.array(rng.uniform(-1, 1, (b, 7, 7, 2)).astype("float32"))
    out = model(crops, grid_q, grid_k)
    assert tuple(out.embedding.shape) == (4 * b, 128)
    assert tuple(out.scores.shape) == (4 * b, 10)
    np.testing.assert_allclose(np.linalg.norm(out.embedding.numpy(), axis=1), 1.0, rtol=1e-5)
    assert len(out.shallow_embeddings) == 1 and tuple(out.shallow_embeddings[0].shape) == (2 * b, 128)
    assert tuple(out.shallow_scores[0].shape) == (2 * b, 10)
    assert tuple(out.pixel_projection.shape) == (2 * b, 128, 7, 7)
    assert tuple(out.pixel_prediction.shape) == (2 * b, 128, 7, 7)
    # deep scores train the prototypes, shallow scores do not (PASS detaches them there)
    assert np.abs(jt.grad(out.scores.sum(), model.prototypes.weight).numpy()).sum() > 0
    assert np.abs(jt.grad(out.shallow_scores[0].sum(), model.prototypes.weight).numpy()).sum() == 0
    # without grids the pixel heads return full C5-resolution maps
    full = model(crops[:2])
    assert tuple(full.pixel_projection.shape) == (2 * b, 128, 2, 2)
    assert tuple(model.shallow_head(3).pixel[0].weight.shape) == (32, 256, 1, 1)


def test_build_model_dims():
    assert arch_depth("resnet50") == 50
    r50 = build_model("resnet50", n_prototypes=7)
    assert tuple(r50.projection_head[0].weight.shape) == (2048, 2048)
    assert tuple(r50.projection_head_pixel[0].weight.shape) == (2048, 2048, 1, 1)
    assert tuple(r50.shallow_head(3).projection[0].weight.shape) == (2048, 1024)
    assert tuple(r50.prototypes.weight.shape) == (7, 128)
    r18 = build_model("resnet18", n_prototypes=7)
    assert tuple(r18.projection_head[0].weight.shape) == (512, 512)
    assert tuple(r18.predictor_head_pixel[0].weight.shape) == (128, 128, 1, 1)
    pa = build_model("resnet18", stage="pixel_attention", n_prototypes=7)
    assert isinstance(pa, PixelAttentionModel)
    with pytest.raises(ValueError):
        build_model("vit_small")


def test_convert_pass_state_dict_and_stage_compatibility():
    model = build_model("resnet18", n_prototypes=5, hidden_dim=16)
    pass_keys = [
        "module.conv1.weight",
        "module.bn1.num_batches_tracked",
        "module.layer2.0.downsample.0.weight",
        "module.layer4.1.bn2.running_var",
        "module.projection_head.0.weight",
        "module.projection_head.4.running_mean",
        "module.projection_head_shallow.projection_head_shallow3.0.weight",
        "module.projection_head_pixel_shallow.projection_head_pixel3.7.running_var",
        "module.projection_head_pixel.6.weight",
        "module.predictor_head_pixel.3.bias",
        "module.prototypes.weight",
    ]
    from uss.checkpoints.foreign import convert_pass_state_dict

    converted = convert_pass_state_dict({k: None for k in pass_keys})
    assert "backbone.conv1.weight" in converted and "shallow_head3.projection.0.weight" in converted
    assert "shallow_head3.pixel.7.running_var" in converted
    assert not any("num_batches_tracked" in k for k in converted)
    assert set(converted) <= set(model.state_dict().keys())
    # the pixel-attention model loads a pretraining checkpoint by name except for its attention head
    pa = build_model("resnet18", stage="pixel_attention", n_prototypes=5, hidden_dim=16)
    pa_keys = {k for k in pa.state_dict() if not k.startswith("fbg.")}
    assert pa_keys <= set(model.state_dict().keys())
    assert {"fbg.threshold", "fbg.atten.0.weight", "fbg.atten.0.bias", "fbg.atten.4.weight"} <= set(pa.state_dict())


@pytest.mark.slow  # trains
def test_pixel_attention_ranges_and_training_step():
    model = PixelAttentionModel(depth=18, n_prototypes=6, hidden_dim=16)
    x = _randn(2, 3, 64, 64)
    feats, att = model.pixel_features(x)
    assert tuple(feats.shape) == (2, 512, 8, 8) and tuple(att.shape) == (2, 512, 8, 8)
    a = att.numpy()
    assert a.min() > 0 and a.max() < 1
    np.testing.assert_allclose(np.linalg.norm(feats.numpy(), axis=1), 1.0, rtol=1e-4)
    _, fg = model.attention_map(x)
    assert tuple(fg.shape) == (2, 1, 8, 8)
    np.testing.assert_allclose(fg.numpy(), a.mean(axis=1, keepdims=True), rtol=1e-5)
    emb = model.pooled_embedding(x).numpy()
    assert emb.shape == (2, 512)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)

    model.freeze_pretrained()
    params = model.trainable_parameters()
    assert any(p is model.fbg.threshold for p in params) and any(p is model.prototypes.weight for p in params)
    before_fbg = [model.fbg.threshold.numpy().copy(), model.fbg.atten[0].weight.numpy().copy()]
    before_backbone = model.backbone.conv1.weight.numpy().copy()
    before_head = model.projection_head[0].weight.numpy().copy()
    optimizer = jt.optim.SGD(model.parameters(), lr=1.0, momentum=0.9)
    model.prototypes.normalize_prototypes()
    before_protos = model.prototypes.weight.numpy().copy()
    emb, scores = model([x, _randn(2, 3, 64, 64, seed=1)])
    assert tuple(emb.shape) == (4, 128) and tuple(scores.shape) == (4, 6)
    optimizer.step((scores * scores).mean() + emb[:, 0].sum())
    assert not np.allclose(model.fbg.threshold.numpy(), before_fbg[0])
    assert not np.allclose(model.fbg.atten[0].weight.numpy(), before_fbg[1])
    assert not np.allclose(model.prototypes.weight.numpy(), before_protos)  # still trainable after normalising
    np.testing.assert_array_equal(model.backbone.conv1.weight.numpy(), before_backbone)
    np.testing.assert_array_equal(model.projection_head[0].weight.numpy(), before_head)
