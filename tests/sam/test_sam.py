"""Unit tests for uss.sam that need neither PyTorch nor the official package."""
import logging
import os

import numpy as np
import pytest

import uss  # noqa: F401  (jittor environment defaults)
import jittor as jt

from uss.sam import (
    SAM_CONFIGS,
    CheckpointError,
    ResizeLongestSide,
    SamAutomaticMaskGenerator,
    SamPredictor,
    build_sam,
    load_sam_checkpoint,
)
from uss.sam import amg_utils
from uss.sam.oom import is_oom_error, iter_batches_with_oom_backoff
from uss.sam.sam import bilinear_matrix

JITTOR_OOM_TEXT = (
    "[f 0101 00:00:00.000000 00 cuda_device_allocator.cc:31] "
    "Unable to alloc cuda device memory for size 2147483648"
)


@pytest.fixture(scope="module")
def tiny_sam():
    """A randomly initialised vit_tiny model."""
    jt.set_global_seed(0)
    return build_sam("vit_tiny")


@pytest.fixture(scope="module")
def tiny_state(tiny_sam):
    """The tiny model's state dict as numpy arrays."""
    return {k: v.numpy() for k, v in tiny_sam.state_dict().items()}


def _save(state, path) -> str:
    """Write a state dict with jt.save (a pickle jt.load reads back)."""
    jt.save(state, str(path))
    return str(path)


# --------------------------------------------------------------------------------- configs --
def test_official_configs():
    """vit_h / vit_l / vit_b use the released encoder sizes and shared prompt/decoder sizes."""
    expected = {
        "vit_h": (1280, 32, 16, (7, 15, 23, 31)),
        "vit_l": (1024, 24, 16, (5, 11, 17, 23)),
        "vit_b": (768, 12, 12, (2, 5, 8, 11)),
    }
    for name, (dim, depth, heads, global_idx) in expected.items():
        c = SAM_CONFIGS[name]
        assert (c.encoder_embed_dim, c.encoder_depth, c.encoder_num_heads) == (dim, depth, heads)
        assert tuple(c.encoder_global_attn_indexes) == global_idx
        assert (c.img_size, c.patch_size, c.window_size, c.prompt_embed_dim) == (1024, 16, 14, 256)
        assert (c.decoder_depth, c.decoder_mlp_dim, c.decoder_num_heads, c.mask_in_chans) == (2, 2048, 8, 16)
    with pytest.raises(ValueError, match="unknown SAM model type"):
        build_sam("vit_xxl")


def test_state_dict_uses_official_names(tiny_state):
    """Parameter names follow the official checkpoint layout."""
    for key in (
        "image_encoder.pos_embed",
        "image_encoder.patch_embed.proj.weight",
        "image_encoder.blocks.0.attn.qkv.weight",
        "image_encoder.blocks.0.attn.rel_pos_h",
        "image_encoder.neck.0.weight",
        "image_encoder.neck.3.bias",
        "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix",
        "prompt_encoder.point_embeddings.3.weight",
        "prompt_encoder.mask_downscaling.6.weight",
        "mask_decoder.transformer.layers.1.cross_attn_image_to_token.out_proj.weight",
        "mask_decoder.output_upscaling.3.weight",
        "mask_decoder.output_hypernetworks_mlps.0.layers.0.weight",
        "mask_decoder.iou_prediction_head.layers.2.bias",
    ):
        assert key in tiny_state, key
    assert not any("pixel_mean" in k or "pixel_std" in k for k in tiny_state)
    assert tiny_state["mask_decoder.output_upscaling.0.weight"].shape == (64, 16, 2, 2)


# ------------------------------------------------------------------------------ checkpoint --
def test_checkpoint_roundtrip(tiny_state, tmp_path):
    """A saved state dict loads into a fresh model exactly."""
    path = _save(tiny_state, tmp_path / "sam.pkl")
    model = build_sam("vit_tiny", checkpoint=path)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), tiny_state[key])


def test_checkpoint_missing_and_unexpected_keys(tiny_state, tmp_path):
    """Missing and unexpected keys are all named, together with the file."""
    state = dict(tiny_state)
    del state["image_encoder.blocks.0.attn.qkv.weight"]
    del state["mask_decoder.iou_token.weight"]
    state["image_encoder.blocks.9.attn.qkv.weight"] = np.zeros((3, 3), np.float32)
    path = _save(state, tmp_path / "missing.pkl")
    with pytest.raises(CheckpointError) as err:
        build_sam("vit_tiny", checkpoint=path)
    msg = str(err.value)
    assert path in msg
    assert "missing keys (2)" in msg and "image_encoder.blocks.0.attn.qkv.weight" in msg
    assert "mask_decoder.iou_token.weight" in msg
    assert "unexpected keys (1)" in msg and "image_encoder.blocks.9.attn.qkv.weight" in msg


def test_checkpoint_shape_mismatch(tiny_state, tmp_path):
    """A wrong shape is reported with both shapes; nothing is half-loaded silently."""
    state = dict(tiny_state)
    state["image_encoder.neck.0.weight"] = np.zeros((32, 64, 1, 1), np.float32)
    path = _save(state, tmp_path / "shape.pkl")
    model = build_sam("vit_tiny")
    before = model.state_dict()["image_encoder.pos_embed"].numpy().copy()
    with pytest.raises(CheckpointError) as err:
        load_sam_checkpoint(model, path)
    msg = str(err.value)
    assert "shape mismatches (1)" in msg
    assert "image_encoder.neck.0.weight: checkpoint [32, 64, 1, 1] vs model [64, 64, 1, 1]" in msg
    np.testing.assert_array_equal(model.state_dict()["image_encoder.pos_embed"].numpy(), before)


@pytest.mark.parametrize("content", [os.urandom(4096), b"not a checkpoint\n", b""])
def test_checkpoint_unreadable_file(tmp_path, content):
    """Garbage gives a one-line error naming the file."""
    path = tmp_path / "garbage.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as err:
        build_sam("vit_tiny", checkpoint=str(path))
    msg = str(err.value)
    assert str(path) in msg and "\n" not in msg


def test_checkpoint_not_found(tmp_path):
    """A missing file is named."""
    path = str(tmp_path / "nope.pth")
    with pytest.raises(CheckpointError, match="not found: .*nope.pth"):
        build_sam("vit_tiny", checkpoint=path)


def test_checkpoint_torch_file_and_truncation(tiny_state, tmp_path):
    """A real torch.save file loads; the same file truncated gives a one-line error."""
    import torch  # installed by the test profile (pyproject's [test] extra); its absence must fail, not skip
    path = tmp_path / "sam.pth"
    torch.save({k: torch.as_tensor(v) for k, v in tiny_state.items()}, str(path))
    model = build_sam("vit_tiny", checkpoint=str(path))
    np.testing.assert_array_equal(
        model.state_dict()["mask_decoder.mask_tokens.weight"].numpy(),
        tiny_state["mask_decoder.mask_tokens.weight"],
    )
    cut = tmp_path / "cut.pth"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    with pytest.raises(CheckpointError) as err:
        build_sam("vit_tiny", checkpoint=str(cut))
    assert str(cut) in str(err.value) and "\n" not in str(err.value)


# ------------------------------------------------------------------------------------- OOM --
class FakeOOMOnce:
    """Callable over (start, stop) that raises jittor's OOM error on its first call."""

    def __init__(self) -> None:
        self.calls = []

    def __call__(self, start: int, stop: int):
        self.calls.append((start, stop))
        if len(self.calls) == 1:
            raise RuntimeError(JITTOR_OOM_TEXT)
        return list(range(start, stop))


def test_oom_detection():
    """Jittor/CUDA allocation failures are recognised; other errors are not."""
    assert is_oom_error(RuntimeError(JITTOR_OOM_TEXT))
    assert is_oom_error(RuntimeError("CUDA error: out of memory"))
    assert not is_oom_error(RuntimeError("shape mismatch"))
    assert not is_oom_error(ValueError("out of memory"))


def test_oom_halves_batch_and_retries(caplog):
    """The failing batch is retried at half size, later batches keep the smaller size."""
    fn = FakeOOMOnce()
    with caplog.at_level(logging.WARNING, logger="uss.sam.oom"):
        out = list(iter_batches_with_oom_backoff(fn, total=20, batch_size=8, enabled=True))
    assert fn.calls == [(0, 8), (0, 4), (4, 8), (8, 12), (12, 16), (16, 20)]
    assert [r for _, _, res in out for r in res] == list(range(20))
    assert any("out of memory" in rec.getMessage() and "batch size 4" in rec.getMessage() for rec in caplog.records)


def test_oom_not_swallowed_when_disabled_or_other_error():
    """Disabled back-off, non-OOM errors and OOM at batch size 1 propagate."""
    with pytest.raises(RuntimeError, match="Unable to alloc"):
        list(iter_batches_with_oom_backoff(FakeOOMOnce(), total=4, batch_size=2, enabled=False))

    def broken(start, stop):
        raise RuntimeError("some other failure")

    with pytest.raises(RuntimeError, match="some other failure"):
        list(iter_batches_with_oom_backoff(broken, total=4, batch_size=2, enabled=True))

    def always_oom(start, stop):
        raise RuntimeError(JITTOR_OOM_TEXT)

    with pytest.raises(RuntimeError, match="Unable to alloc"):
        list(iter_batches_with_oom_backoff(always_oom, total=4, batch_size=4, enabled=True))


def test_oom_default_follows_use_cuda():
    """Without an explicit switch, back-off is on exactly when jittor runs on CUDA."""
    gen = iter_batches_with_oom_backoff(FakeOOMOnce(), total=2, batch_size=2)
    if jt.flags.use_cuda:
        assert [s for s, _, _ in gen] == [0, 1]
    else:
        with pytest.raises(RuntimeError):
            list(gen)


# ------------------------------------------------------------------------------ transforms --
def test_resize_longest_side_coords_and_boxes():
    """Coordinates scale by the per-axis resize factors; sizes round half up."""
    t = ResizeLongestSide(1024)
    assert t.get_preprocess_shape(200, 300, 1024) == (683, 1024)
    assert t.get_preprocess_shape(300, 200, 1024) == (1024, 683)
    assert t.get_preprocess_shape(1024, 1024, 1024) == (1024, 1024)
    coords = np.array([[0.0, 0.0], [300.0, 200.0], [150.0, 50.0]])
    out = t.apply_coords(coords, (200, 300))
    np.testing.assert_allclose(out, [[0, 0], [1024, 683], [512, 683 / 4]])
    assert coords[1, 0] == 300.0  # input untouched
    boxes = t.apply_boxes(np.array([[30, 20, 150, 100]]), (200, 300))
    np.testing.assert_allclose(boxes, [[30 * 1024 / 300, 20 * 683 / 200, 512, 100 * 683 / 200]])
    image = np.zeros((200, 300, 3), np.uint8)
    assert t.apply_image(image).shape == (683, 1024, 3)


def test_bilinear_matrix_matches_opencv():
    """The resize matrices implement half-pixel bilinear interpolation (as cv2 INTER_LINEAR)."""
    import cv2

    rng = np.random.default_rng(0)
    img = rng.normal(size=(16, 24)).astype(np.float32)
    for out_h, out_w in [(64, 96), (40, 30), (16, 24)]:
        ours = bilinear_matrix(16, out_h) @ img @ bilinear_matrix(24, out_w).T
        ref = cv2.resize(img, (out_w, out_h), interpolation=cv2.INTER_LINEAR)
        np.testing.assert_allclose(ours, ref, atol=1e-5)


# ------------------------------------------------------------------------------- predictor --
def test_predictor_outputs(tiny_sam):
    """Shapes and dtypes of predict() for points, boxes and mask input."""
    predictor = SamPredictor(tiny_sam)
    with pytest.raises(RuntimeError, match="set_image"):
        predictor.predict(point_coords=np.array([[1.0, 1.0]]), point_labels=np.array([1]))
    image = np.random.default_rng(0).integers(0, 255, (120, 90, 3), dtype=np.uint8)
    predictor.set_image(image)
    assert predictor.get_image_embedding().shape == (1, 64, 16, 16)
    masks, iou, low = predictor.predict(np.array([[10.0, 20.0], [50, 60]]), np.array([1, 0]))
    assert masks.shape == (3, 120, 90) and masks.dtype == bool
    assert iou.shape == (3,) and low.shape == (3, 64, 64)
    masks, iou, low = predictor.predict(box=np.array([5, 5, 60, 80]), mask_input=low[:1], multimask_output=False)
    assert masks.shape == (1, 120, 90) and iou.shape == (1,) and low.shape == (1, 64, 64)
    logits, _, _ = predictor.predict(box=np.array([5, 5, 60, 80]), multimask_output=False, return_logits=True)
    assert logits.dtype == np.float32
    np.testing.assert_array_equal(logits > 0,
                                  predictor.predict(box=np.array([5, 5, 60, 80]), multimask_output=False)[0])


def test_batched_forward_matches_predictor(tiny_sam):
    """Sam(batched_input) gives the predictor's result for the same resized image and box."""
    image = np.random.default_rng(3).integers(0, 255, (100, 150, 3), dtype=np.uint8)
    predictor = SamPredictor(tiny_sam)
    predictor.set_image(image)
    box = np.array([10, 20, 90, 70])
    masks, iou, low = predictor.predict(box=box, multimask_output=False)
    resized = predictor.transform.apply_image(image).transpose(2, 0, 1).astype(np.float32)
    record = {
        "image": jt.array(resized),
        "original_size": (100, 150),
        "boxes": jt.array(predictor.transform.apply_boxes(box, (100, 150)).astype(np.float32)),
    }
    out = tiny_sam([record], multimask_output=False)[0]
    np.testing.assert_allclose(out["low_res_logits"].numpy()[0], low, atol=1e-5)
    np.testing.assert_allclose(out["iou_predictions"].numpy()[0], iou, atol=1e-6)
    assert (out["masks"].numpy()[0] == masks).mean() > 0.999


# ---------------------------------------------------------------------- automatic generator --
def _recording_generator(model, **kwargs):
    """Generator whose predictor records the batch size of every decode call."""
    gen = SamAutomaticMaskGenerator(model, **kwargs)
    sizes = []
    decode = gen.predictor.decode

    def recording_decode(coords, labels, *args, **kw):
        sizes.append(coords.shape[0])
        return decode(coords, labels, *args, **kw)

    gen.predictor.decode = recording_decode
    return gen, sizes


def test_generator_batches_and_oom_backoff(tiny_sam):
    """Points go through the model in batches of at most points_per_batch; an injected OOM halves it."""
    image = np.random.default_rng(1).integers(0, 255, (64, 80, 3), dtype=np.uint8)
    kwargs = dict(points_per_side=6, points_per_batch=8, pred_iou_thresh=0.0, stability_score_thresh=0.0)
    gen, sizes = _recording_generator(tiny_sam, **kwargs)
    reference = gen.generate(image)
    assert sizes == [8, 8, 8, 8, 4]
    assert len(reference) > 0

    gen, sizes = _recording_generator(tiny_sam, oom_backoff=True, **kwargs)
    inner = gen.predictor.decode
    state = {"failed": False}

    def flaky_decode(coords, labels, *args, **kw):
        if not state["failed"]:
            state["failed"] = True
            raise RuntimeError(JITTOR_OOM_TEXT)
        return inner(coords, labels, *args, **kw)

    gen.predictor.decode = flaky_decode
    result = gen.generate(image)
    assert sizes == [4] * 9
    assert len(result) == len(reference)
    for a, b in zip(result, reference):
        np.testing.assert_array_equal(a["segmentation"], b["segmentation"])
        assert a["bbox"] == b["bbox"] and a["point_coords"] == b["point_coords"]


def test_generator_record_format(tiny_sam):
    """Records carry the documented keys with plain Python / numpy values."""
    image = np.random.default_rng(2).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    gen = SamAutomaticMaskGenerator(
        tiny_sam, points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0,
        crop_n_layers=1, min_mask_region_area=10,
    )
    for rec in gen.generate(image):
        assert rec["segmentation"].shape == (48, 64) and rec["segmentation"].dtype == bool
        assert rec["area"] == int(rec["segmentation"].sum())
        assert len(rec["bbox"]) == 4 and len(rec["crop_box"]) == 4
        assert isinstance(rec["predicted_iou"], float) and isinstance(rec["stability_score"], float)
        assert len(rec["point_coords"]) == 1 and len(rec["point_coords"][0]) == 2
    with pytest.raises(ValueError):
        SamAutomaticMaskGenerator(tiny_sam, points_per_side=None)


# ------------------------------------------------------------------------------- amg utils --
def test_rle_roundtrip_and_area():
    """RLE encoding is lossless and counts start with a background run."""
    rng = np.random.default_rng(0)
    masks = rng.random((3, 7, 5)) > 0.5
    masks[1] = True
    masks[2] = False
    rles = amg_utils.mask_to_rle(masks)
    for rle, mask in zip(rles, masks):
        assert rle["size"] == [7, 5]
        np.testing.assert_array_equal(amg_utils.rle_to_mask(rle), mask)
        assert amg_utils.area_from_rle(rle) == mask.sum()
    assert rles[1]["counts"] == [0, 35] and rles[2]["counts"] == [35]


def test_nms_and_boxes():
    """NMS drops overlapping lower-scored boxes and breaks score ties by input order."""
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30], [0, 0, 10, 10]])
    scores = np.array([0.5, 0.9, 0.3, 0.9], np.float32)
    np.testing.assert_array_equal(amg_utils.nms(boxes, scores, 0.5), [1, 2])
    np.testing.assert_array_equal(amg_utils.nms(boxes, scores, 0.95), [1, 3, 2])
    masks = np.zeros((2, 6, 8), bool)
    masks[0, 1:4, 2:7] = True
    np.testing.assert_array_equal(amg_utils.batched_mask_to_box(masks), [[2, 1, 6, 3], [0, 0, 0, 0]])


def test_mask_data_filter_and_cat():
    """MaskData keeps its columns aligned through filtering, reordering and concatenation."""
    data = amg_utils.MaskData(a=np.arange(4), b=["w", "x", "y", "z"])
    data.filter(np.array([True, False, True, True]))
    data.filter(np.array([2, 0]))
    assert data["a"].tolist() == [3, 0] and data["b"] == ["z", "w"]
    data.cat(amg_utils.MaskData(a=np.array([7]), b=["q"]))
    assert data["a"].tolist() == [3, 0, 7] and data["b"] == ["z", "w", "q"] and len(data) == 3
    with pytest.raises(TypeError):
        amg_utils.MaskData(a=(1, 2))
