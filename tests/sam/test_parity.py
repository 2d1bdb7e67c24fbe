"""Parity of the Jittor SAM port (uss.sam) against the official PyTorch implementation.

Reference: the `segment-anything==1.0` package on CPU `torch==2.13.0`, built in the small
`vit_tiny` config with seeded random weights, saved with torch.save and loaded into the Jittor
model through uss.sam's checkpoint loader (official key names, no conversion).

What is stubbed, and why: torchvision cannot be imported on the CPU-only test machine, but
segment_anything imports it at module load. Before importing segment_anything a fake
`torchvision` module tree is placed in sys.modules (and removed again afterwards) providing only
the four names the package imports:
  * torchvision.ops.boxes.batched_nms - a faithful pure-torch version of torchvision's CPU kernel
    (stable descending score sort, greedy suppression when IoU > threshold, per-category via the
    coordinate-offset trick); used by the official automatic mask generator.
  * torchvision.ops.boxes.box_area - (x2 - x1) * (y2 - y1).
  * torchvision.transforms.functional.to_pil_image / resize - used only by
    ResizeLongestSide.apply_image on HxWx3 uint8 numpy images, where torchvision does exactly
    PIL.Image.fromarray(...) and PIL .resize((w, h), BILINEAR); the stubs do the same.
No model code (image encoder, prompt encoder, transformer, mask decoder, Sam) is touched.

Weights: prompt parity uses seeded random weights (numpy RNG). With fully random weights the
automatic generator keeps at most one mask, so its test edits a copy of the random weights
(make_masks_segment_colours) to make masks colour segments; the thresholds are then chosen so
that a few dozen masks pass.
"""
import importlib.util
import sys
import types
from functools import partial
from typing import Dict, Tuple

import numpy as np
import pytest

import torch  # noqa: E402  (the [test] extra installs it; a missing torch fails the test, never skips it)

import uss  # noqa: E402,F401  (jittor environment defaults)
import jittor as jt  # noqa: E402

from uss.sam import SAM_CONFIGS, SamAutomaticMaskGenerator, SamPredictor, build_sam  # noqa: E402

pytestmark = pytest.mark.slow  # builds and runs the official PyTorch SAM next to the port

TOL = 1e-4
CONFIG = SAM_CONFIGS["vit_tiny"]
AMG_KWARGS = dict(
    points_per_side=8,
    points_per_batch=24,
    crop_n_layers=1,
    crop_n_points_downscale_factor=2,
    box_nms_thresh=0.7,
    crop_nms_thresh=0.7,
    min_mask_region_area=25,
)


# ---------------------------------------------------------------------------------------------
# torchvision stand-ins (see module docstring)
# ---------------------------------------------------------------------------------------------
def _torch_nms(boxes: "torch.Tensor", scores: "torch.Tensor", iou_threshold: float) -> "torch.Tensor":
    """Greedy NMS as in torchvision's CPU kernel: stable descending sort, suppress IoU > threshold."""
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64)
    x1, y1, x2, y2 = boxes.unbind(1)
    areas = (x2 - x1) * (y2 - y1)
    order = torch.sort(scores, stable=True, descending=True).indices
    suppressed = torch.zeros(len(order), dtype=torch.bool)
    keep = []
    for pos in range(len(order)):
        if suppressed[pos]:
            continue
        i = order[pos]
        keep.append(int(i))
        rest = order[pos + 1 :]
        w = (torch.minimum(x2[i], x2[rest]) - torch.maximum(x1[i], x1[rest])).clamp(min=0)
        h = (torch.minimum(y2[i], y2[rest]) - torch.maximum(y1[i], y1[rest])).clamp(min=0)
        inter = w * h
        iou = inter / (areas[i] + areas[rest] - inter)
        suppressed[pos + 1 :] |= iou > iou_threshold
    return torch.tensor(keep, dtype=torch.int64)


def _torch_batched_nms(
    boxes: "torch.Tensor", scores: "torch.Tensor", idxs: "torch.Tensor", iou_threshold: float
) -> "torch.Tensor":
    """Per-category NMS using torchvision's coordinate-offset trick."""
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64)
    offsets = idxs.to(boxes) * (boxes.max() + 1)
    return _torch_nms(boxes + offsets[:, None], scores, iou_threshold)


def _torchvision_stub() -> Dict[str, types.ModuleType]:
    """Fake torchvision modules exposing only what segment_anything imports."""
    from PIL import Image

    tv = types.ModuleType("torchvision")
    ops = types.ModuleType("torchvision.ops")
    boxes = types.ModuleType("torchvision.ops.boxes")
    transforms = types.ModuleType("torchvision.transforms")
    functional = types.ModuleType("torchvision.transforms.functional")
    boxes.batched_nms = _torch_batched_nms
    boxes.box_area = lambda b: (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    functional.to_pil_image = lambda arr: Image.fromarray(np.asarray(arr))
    functional.resize = lambda img, size: img.resize((int(size[1]), int(size[0])), Image.BILINEAR)
    tv.ops, ops.boxes, tv.transforms, transforms.functional = ops, boxes, transforms, functional
    return {
        "torchvision": tv,
        "torchvision.ops": ops,
        "torchvision.ops.boxes": boxes,
        "torchvision.transforms": transforms,
        "torchvision.transforms.functional": functional,
    }


def import_official() -> types.SimpleNamespace:
    """Import segment_anything with the torchvision stand-ins; sys.modules is restored afterwards."""
    stub = _torchvision_stub()
    saved = {name: sys.modules.get(name) for name in stub}
    sys.modules.update(stub)
    try:
        import segment_anything as sa
        import segment_anything.utils.amg as amg
        from segment_anything.modeling import (
            ImageEncoderViT,
            MaskDecoder,
            PromptEncoder,
            Sam,
            TwoWayTransformer,
        )
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    return types.SimpleNamespace(
        amg=amg,
        batched_nms=_torch_batched_nms,
        SamPredictor=sa.SamPredictor,
        SamAutomaticMaskGenerator=sa.SamAutomaticMaskGenerator,
        ImageEncoderViT=ImageEncoderViT,
        MaskDecoder=MaskDecoder,
        PromptEncoder=PromptEncoder,
        Sam=Sam,
        TwoWayTransformer=TwoWayTransformer,
    )


@pytest.fixture(scope="module")
def official() -> types.SimpleNamespace:
    """The official segment_anything API (the [test] extra installs the package)."""
    if importlib.util.find_spec("segment_anything") is None:
        raise RuntimeError("segment-anything is not installed: run bash run_tests.sh, which installs the [test] extra")
    return import_official()


def build_official(official: types.SimpleNamespace, config=CONFIG) -> "torch.nn.Module":
    """Official PyTorch SAM built from one of uss.sam's configs (same constructor arguments)."""
    c = config
    grid = c.img_size // c.patch_size
    sam = official.Sam(
        image_encoder=official.ImageEncoderViT(
            img_size=c.img_size,
            patch_size=c.patch_size,
            embed_dim=c.encoder_embed_dim,
            depth=c.encoder_depth,
            num_heads=c.encoder_num_heads,
            mlp_ratio=c.mlp_ratio,
            out_chans=c.prompt_embed_dim,
            qkv_bias=True,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            use_rel_pos=True,
            window_size=c.window_size,
            global_attn_indexes=tuple(c.encoder_global_attn_indexes),
        ),
        prompt_encoder=official.PromptEncoder(
            embed_dim=c.prompt_embed_dim,
            image_embedding_size=(grid, grid),
            input_image_size=(c.img_size, c.img_size),
            mask_in_chans=c.mask_in_chans,
        ),
        mask_decoder=official.MaskDecoder(
            transformer_dim=c.prompt_embed_dim,
            transformer=official.TwoWayTransformer(
                depth=c.decoder_depth,
                embedding_dim=c.prompt_embed_dim,
                mlp_dim=c.decoder_mlp_dim,
                num_heads=c.decoder_num_heads,
            ),
            num_multimask_outputs=c.num_multimask_outputs,
            iou_head_depth=c.iou_head_depth,
            iou_head_hidden_dim=c.iou_head_hidden_dim,
        ),
    )
    return sam.eval()


def randomize_weights(model: "torch.nn.Module", seed: int = 0) -> None:
    """Seeded, non-trivial weights (numpy RNG, so independent of torch's generator)."""
    rng = np.random.default_rng(seed)
    state = model.state_dict()
    for name, tensor in state.items():
        shape = tuple(tensor.shape)
        if name.endswith("positional_encoding_gaussian_matrix"):
            value = rng.normal(0.0, 1.0, shape)
        elif name.endswith(".bias"):
            value = rng.normal(0.0, 0.02, shape)
        elif tensor.dim() == 1:  # LayerNorm scales
            value = 1.0 + rng.normal(0.0, 0.1, shape)
        elif "rel_pos" in name or "pos_embed" in name:
            value = rng.normal(0.0, 0.1, shape)
        elif name.startswith("mask_decoder.output_hypernetworks_mlps") and name.endswith("layers.2.weight"):
            value = rng.normal(0.0, 0.3, shape)  # sharp logits, so stability scores are high
        else:
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
            value = rng.normal(0.0, min(0.2, 1.0 / np.sqrt(fan_in)), shape)
        state[name] = torch.as_tensor(value, dtype=torch.float32)
    model.load_state_dict(state)


def synthetic_image(h: int = 200, w: int = 300, seed: int = 0) -> np.ndarray:
    """An RGB uint8 image with a smooth background, a few solid shapes and mild noise."""
    import cv2

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([40 + 80 * xx / w, 60 + 60 * yy / h, 120 + 40 * (xx + yy) / (h + w)], -1)
    img = img.astype(np.uint8)
    cv2.rectangle(img, (20, 30), (110, 120), (220, 40, 40), -1)
    cv2.circle(img, (200, 90), 45, (30, 200, 60), -1)
    cv2.ellipse(img, (150, 165), (70, 20), 15, 0, 360, (240, 230, 50), -1)
    cv2.rectangle(img, (240, 140), (290, 190), (20, 20, 160), -1)
    noise = rng.integers(-6, 7, img.shape)
    return np.clip(img.astype(np.int32) + noise, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def models(official, tmp_path_factory) -> Tuple["torch.nn.Module", object, str]:
    """(official torch model, Jittor model loaded from its saved state dict, checkpoint path)."""
    torch_sam = build_official(official)
    randomize_weights(torch_sam, seed=0)
    path = str(tmp_path_factory.mktemp("sam") / "sam_small.pth")
    torch.save(torch_sam.state_dict(), path)
    jittor_sam = build_sam("vit_tiny", checkpoint=path)
    return torch_sam, jittor_sam, path


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    """The shared test image."""
    return synthetic_image()


@pytest.fixture(scope="module")
def predictors(official, models, image):
    """(official predictor, Jittor predictor), both with the test image set."""
    torch_sam, jittor_sam, _ = models
    ref = official.SamPredictor(torch_sam)
    ours = SamPredictor(jittor_sam)
    with torch.no_grad():
        ref.set_image(image)
    ours.set_image(image)
    return ref, ours


def _max_diff(a, b) -> float:
    """Max absolute difference between two arrays of the same shape."""
    a = a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)
    b = b.numpy() if isinstance(b, jt.Var) else np.asarray(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())


def test_checkpoint_keys_are_official(models):
    """The Jittor state dict has exactly the official key names and shapes."""
    torch_sam, jittor_sam, _ = models
    ref = {k: tuple(v.shape) for k, v in torch_sam.state_dict().items()}
    ours = {k: tuple(v.shape) for k, v in jittor_sam.state_dict().items()}
    assert ours == ref
    assert "image_encoder.blocks.0.attn.qkv.weight" in ours
    assert "mask_decoder.output_hypernetworks_mlps.0.layers.0.weight" in ours


def test_image_embedding_parity(predictors):
    """Image embeddings agree to 1e-4."""
    ref, ours = predictors
    assert ref.input_size == ours.input_size and tuple(ref.original_size) == ours.original_size
    diff = _max_diff(ref.features, ours.features)
    print(f"image embedding max abs diff: {diff:.3e}")
    assert diff <= TOL


PROMPTS = {
    "points": dict(point_coords=np.array([[60.0, 70.0], [200.0, 95.0]]), point_labels=np.array([1, 0])),
    "box": dict(box=np.array([15.0, 25.0, 120.0, 125.0])),
    "points_box": dict(
        point_coords=np.array([[150.0, 165.0]]), point_labels=np.array([1]), box=np.array([70, 130, 230, 200])
    ),
}


@pytest.mark.parametrize("prompt", sorted(PROMPTS))
@pytest.mark.parametrize("multimask", [True, False])
def test_prompt_parity(predictors, prompt, multimask):
    """Low-res logits, IoU predictions and full-size logits agree for point/box prompts."""
    ref, ours = predictors
    kwargs = dict(PROMPTS[prompt], multimask_output=multimask, return_logits=True)
    with torch.no_grad():
        r_masks, r_iou, r_low = ref.predict(**kwargs)
    o_masks, o_iou, o_low = ours.predict(**kwargs)
    d_low, d_iou, d_full = _max_diff(r_low, o_low), _max_diff(r_iou, o_iou), _max_diff(r_masks, o_masks)
    print(f"{prompt} multimask={multimask}: low-res {d_low:.3e} iou {d_iou:.3e} full-res {d_full:.3e}")
    assert d_low <= TOL and d_iou <= TOL and d_full <= TOL
    assert np.abs(r_low).max() > 1.0  # non-degenerate outputs


def test_mask_input_parity(predictors):
    """A previous low-res mask fed back as mask_input gives the same result."""
    ref, ours = predictors
    first = dict(PROMPTS["points"], multimask_output=True)
    with torch.no_grad():
        _, r_iou, r_low = ref.predict(**first)
    mask_input = r_low[np.argmax(r_iou)][None]
    kwargs = dict(PROMPTS["points"], mask_input=mask_input, multimask_output=False)
    with torch.no_grad():
        r_masks, r_iou, r_low = ref.predict(**kwargs)
    o_masks, o_iou, o_low = ours.predict(**kwargs)
    d_low, d_iou = _max_diff(r_low, o_low), _max_diff(r_iou, o_iou)
    print(f"mask input: low-res {d_low:.3e} iou {d_iou:.3e}")
    assert d_low <= TOL and d_iou <= TOL
    agree = (np.asarray(r_masks) == o_masks).mean()
    assert agree > 0.999

    only_mask = dict(mask_input=mask_input, multimask_output=True)
    with torch.no_grad():
        _, r_iou, r_low = ref.predict(**only_mask)
    _, o_iou, o_low = ours.predict(**only_mask)
    d_low, d_iou = _max_diff(r_low, o_low), _max_diff(r_iou, o_iou)
    print(f"mask input only: low-res {d_low:.3e} iou {d_iou:.3e}")
    assert d_low <= TOL and d_iou <= TOL


def _mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two boolean masks."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def blob_image(h: int = 200, w: int = 300, seed: int = 0) -> np.ndarray:
    """Eight solid colour blobs (rectangles and discs) on a grey background, with mild noise."""
    import cv2

    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), 128, np.uint8)
    colours = [(230, 30, 30), (30, 220, 40), (40, 40, 230), (240, 230, 40),
               (230, 40, 230), (30, 230, 230), (250, 250, 250), (10, 10, 10)]
    for i, colour in enumerate(colours):
        cx, cy = int(rng.integers(30, w - 30)), int(rng.integers(30, h - 30))
        if i % 2:
            cv2.circle(img, (cx, cy), int(rng.integers(14, 28)), colour, -1)
        else:
            x1, y1 = cx + int(rng.integers(5, 25)), cy + int(rng.integers(5, 20))
            cv2.rectangle(img, (cx - 20, cy - 15), (x1, y1), colour, -1)
    noise = rng.integers(-5, 6, img.shape)
    return np.clip(img.astype(np.int32) + noise, 0, 255).astype(np.uint8)


def make_masks_segment_colours(model: "torch.nn.Module") -> None:
    """Edit random weights so that SAM's masks are colour segments (several pass the AMG filters).

    With fully random weights every mask is speckled or covers the whole image, so NMS leaves one
    mask at most. These edits keep the architecture and most random weights but make each mask a
    thresholded random function of the local colour, with sharp edges:
      * image encoder blocks become identities (attention and MLP output projections zeroed, no
        absolute position embedding): the embedding is a per-location colour feature;
      * the decoder's image-to-token attention writes nothing back to the image tokens;
      * the 2x2 transposed convolutions use one weight for all four sub-pixels (no checkerboard);
      * the upscaling GELUs are shifted into their near-linear range, and the hypernetwork outputs
        are made zero-sum and 10x larger, so a mask logit is a zero-centred, steep linear function
        of the normalised per-pixel feature.
    """
    sd = model.state_dict()
    dec = "mask_decoder."
    for key in sd:
        if key.startswith("image_encoder.blocks.") and (".attn.proj." in key or ".mlp.lin2." in key):
            sd[key].zero_()
    sd["image_encoder.pos_embed"].zero_()
    for layer in range(CONFIG.decoder_depth):
        for part in ("weight", "bias"):
            sd[f"{dec}transformer.layers.{layer}.cross_attn_image_to_token.out_proj.{part}"].zero_()
    for idx in (0, 3):
        key = f"{dec}output_upscaling.{idx}.weight"
        sd[key] = sd[key][:, :, :1, :1].expand(-1, -1, 2, 2).clone()
    sd[f"{dec}output_upscaling.1.bias"].fill_(3.0)
    second = sd[f"{dec}output_upscaling.3.weight"][:, :, 0, 0]
    sd[f"{dec}output_upscaling.3.bias"] = 3.0 - 3.0 * second.sum(0)
    for i in range(CONFIG.num_multimask_outputs + 1):
        prefix = f"{dec}output_hypernetworks_mlps.{i}.layers.2."
        sd[prefix + "weight"] = 10.0 * (sd[prefix + "weight"] - sd[prefix + "weight"].mean(0, keepdim=True))
        sd[prefix + "bias"] = 10.0 * (sd[prefix + "bias"] - sd[prefix + "bias"].mean())
    model.load_state_dict(sd)


@pytest.fixture(scope="module")
def amg_models(official, tmp_path_factory) -> Tuple["torch.nn.Module", object]:
    """(official model, Jittor model) whose masks are colour segments, via a saved checkpoint."""
    torch_sam = build_official(official)
    randomize_weights(torch_sam, seed=0)
    make_masks_segment_colours(torch_sam)
    path = str(tmp_path_factory.mktemp("sam_amg") / "sam_small_amg.pth")
    torch.save(torch_sam.state_dict(), path)
    return torch_sam, build_sam("vit_tiny", checkpoint=path)


def _pred_iou_threshold(model, official, image: np.ndarray, quantile: float) -> float:
    """A threshold near the given quantile of the grid's predicted IoUs, halfway between two values."""
    predictor = official.SamPredictor(model)
    h, w = image.shape[:2]
    side = np.linspace(1 / 16, 15 / 16, 8)
    points = np.stack(np.meshgrid(side * w, side * h), -1).reshape(-1, 2)
    with torch.no_grad():
        predictor.set_image(image)
        coords = torch.as_tensor(predictor.transform.apply_coords(points, (h, w)), dtype=torch.float)
        _, iou, _ = predictor.predict_torch(coords[:, None], torch.ones(len(points), 1, dtype=torch.int))
    values = np.sort(iou.numpy().ravel())
    k = int(quantile * len(values))
    return float((values[k] + values[k + 1]) / 2)


def test_automatic_mask_generator_parity(official, amg_models):
    """Same masks (count, order, pixels) and metadata as the official generator."""
    torch_sam, jittor_sam = amg_models
    image = blob_image()
    iou_thresh = _pred_iou_threshold(torch_sam, official, image, quantile=0.25)
    kwargs = dict(AMG_KWARGS, pred_iou_thresh=iou_thresh, stability_score_thresh=0.8)
    with torch.no_grad():
        ref = official.SamAutomaticMaskGenerator(torch_sam, **kwargs).generate(image)
    ours = SamAutomaticMaskGenerator(jittor_sam, **kwargs).generate(image)
    print(f"AMG: official {len(ref)} masks, jittor {len(ours)} masks (pred_iou_thresh={iou_thresh:.4f})")
    assert len(ref) >= 5
    assert len(ours) == len(ref)
    keys = {"segmentation", "area", "bbox", "predicted_iou", "point_coords", "stability_score", "crop_box"}
    worst_best, worst_same = 1.0, 1.0
    for r, o in zip(ref, ours):
        assert set(o) == keys
        seg = o["segmentation"]
        assert seg.shape == image.shape[:2] and seg.dtype == bool
        worst_best = min(worst_best, max(_mask_iou(seg, x["segmentation"]) for x in ref))
        worst_same = min(worst_same, _mask_iou(seg, r["segmentation"]))
        assert abs(r["predicted_iou"] - o["predicted_iou"]) <= TOL
        assert abs(r["stability_score"] - o["stability_score"]) <= 0.01
        assert r["crop_box"] == o["crop_box"]
        np.testing.assert_allclose(o["point_coords"], r["point_coords"], atol=1e-6)
    print(f"AMG: worst best-match IoU {worst_best:.5f}, worst same-index IoU {worst_same:.5f}")
    assert worst_best >= 0.99
    assert worst_same >= 0.99


def test_nms_matches_reference(official):
    """uss.sam's numpy NMS keeps the same boxes, in the same order, as torchvision's algorithm."""
    from uss.sam.amg_utils import batched_nms

    rng = np.random.default_rng(1)
    xy = rng.integers(0, 80, (300, 2))
    wh = rng.integers(1, 60, (300, 2))
    boxes = np.concatenate([xy, xy + wh], axis=1)
    scores = rng.integers(0, 5, 300).astype(np.float32)  # many ties
    for thresh in (0.3, 0.7):
        ref = official.batched_nms(
            torch.as_tensor(boxes).float(), torch.as_tensor(scores), torch.zeros(300), thresh
        ).numpy()
        np.testing.assert_array_equal(batched_nms(boxes, scores, np.zeros(300), thresh), ref)


def test_amg_helpers_match_reference(official):
    """Point grids, crop boxes, RLE, boxes and small-region removal agree with segment_anything."""
    from uss.sam import amg_utils as ours

    ref = official.amg
    for n, layers, scale in [(8, 1, 2), (32, 2, 1), (5, 0, 1)]:
        for a, b in zip(ref.build_all_layer_point_grids(n, layers, scale),
                        ours.build_all_layer_point_grids(n, layers, scale)):
            np.testing.assert_array_equal(a, b)
    for size, layers, ratio in [((200, 300), 1, 512 / 1500), ((480, 640), 2, 0.3), ((101, 57), 1, 0.5)]:
        assert ref.generate_crop_boxes(size, layers, ratio) == ours.generate_crop_boxes(size, layers, ratio)

    masks = blob_image()[None, :, :, 0] > 200
    masks = np.concatenate([masks, ~masks, np.zeros_like(masks), np.ones_like(masks)])
    ref_rles = ref.mask_to_rle_pytorch(torch.as_tensor(masks))
    assert ours.mask_to_rle(masks) == ref_rles
    for rle, mask in zip(ref_rles, masks):
        np.testing.assert_array_equal(ours.rle_to_mask(rle), mask)
        assert ours.area_from_rle(rle) == int(mask.sum())
    np.testing.assert_array_equal(
        ours.batched_mask_to_box(masks), ref.batched_mask_to_box(torch.as_tensor(masks)).numpy()
    )
    logits = torch.as_tensor(np.random.default_rng(3).normal(0, 2, (5, 40, 30)).astype(np.float32))
    np.testing.assert_array_equal(
        ours.calculate_stability_score(logits.numpy(), 0.0, 1.0),
        ref.calculate_stability_score(logits, 0.0, 1.0).numpy(),
    )
    for mode in ("holes", "islands"):
        for area in (10, 400, 5000):
            a, changed_a = ref.remove_small_regions(masks[0], area, mode)
            b, changed_b = ours.remove_small_regions(masks[0], area, mode)
            np.testing.assert_array_equal(a, b)
            assert changed_a == changed_b
