"""Anti-aliased resizing as PASS (PIL bilinear through torchvision): every image resize of the pipeline equals
PIL.Image.resize(BILINEAR) output, sizes follow torchvision's Resize / CenterCrop, and shrinking does not alias."""
import cv2
import numpy as np
import pytest
from PIL import Image

from uss.data import augment, imageops
from uss.data.multicrop import MultiCropDataset
from uss.data.label_dataset import FINETUNE_MEAN, FINETUNE_STD, paired_crop_flip
from uss.clustering import eval_transform


def photo(height=375, width=500, seed=0):
    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.integers(0, 256, (12, 16, 3)).astype(np.uint8), (width, height),
                      interpolation=cv2.INTER_CUBIC)
    return np.clip(base.astype(np.int32) + rng.integers(-40, 41, base.shape), 0, 255).astype(np.uint8)


def pil_resize(image, height, width):
    return np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR))


def test_resize_bilinear_is_pil_bilinear_and_anti_aliased():
    image = photo()
    for size in ((96, 96), (224, 224), (40, 700), (375, 500), (600, 800)):
        assert np.array_equal(imageops.resize_bilinear(image, *size), pil_resize(image, *size))
    # Black / white pixel noise shrunk 8x: PIL averages about 8 x 8 pixels per output (std near 255 / 2 / 8), OpenCV's
    # INTER_LINEAR only 2 x 2 of them (std near 255 / 2 / 2): it aliases.
    noise = (np.random.default_rng(1).random((256, 256)) < 0.5).astype(np.uint8) * 255
    noise = np.repeat(noise[..., None], 3, axis=2)
    assert imageops.resize_bilinear(noise, 32, 32).std() < 25
    assert cv2.resize(noise, (32, 32), interpolation=cv2.INTER_LINEAR).std() > 50


def test_sizes_follow_torchvision_resize_and_center_crop():
    # torchvision Resize(256): short side 256, long side int(256 * long / short) (truncated, not rounded).
    assert imageops.short_side_size(375, 500, 256) == (256, 341)
    assert imageops.short_side_size(500, 333, 256) == (384, 256)
    assert imageops.short_side_size(300, 300, 256) == (256, 256)
    image = photo(333, 500)
    resized = imageops.resize_short_side(image, 256)
    assert np.array_equal(resized, pil_resize(image, 256, 384))
    # CenterCrop(224) on 256 x 384: top int(round(16.0)) = 16, left int(round(80.0)) = 80; on 225 x 227: round(0.5) = 0
    # and round(1.5) = 2 (Python's round, as torchvision).
    assert np.array_equal(augment.center_crop(resized, 224), resized[16:240, 80:304])
    odd = photo(225, 227)
    assert np.array_equal(augment.center_crop(odd, 224), odd[0:224, 2:226])


def test_bilinear_matrix_is_torch_interpolate_with_half_pixel_centres():
    # 2 -> 4 (align_corners=False): source x = (i + 0.5) / 2 - 0.5 = -0.25 (clamped to 0), 0.25, 0.75, 1.25 (high
    # index clamped to the last pixel), so the weights are [1, 0], [.75, .25], [.25, .75], [0, 1].
    expected = np.array([[1, 0], [0.75, 0.25], [0.25, 0.75], [0, 1]])
    for compute, dtype in ((np.float32, np.float64), (np.float64, np.float32)):
        matrix = imageops.bilinear_matrix(2, 4, compute, dtype)
        assert matrix.dtype == dtype and not matrix.flags.writeable  # cached: shared, so read-only
        np.testing.assert_array_equal(matrix, expected)
    # 4 -> 2 (no antialias): x = 0.5 and 2.5, the mean of pixels 0, 1 and of 2, 3.
    np.testing.assert_array_equal(imageops.bilinear_matrix(4, 2), [[0.5, 0.5, 0, 0], [0, 0, 0.5, 0.5]])
    # the rows are interpolation weights: they sum to 1 whatever the sizes
    np.testing.assert_allclose(imageops.bilinear_matrix(37, 101).sum(1), 1.0, rtol=1e-12)


def test_clustering_and_pseudo_label_inputs_are_pil_resized():
    image = photo(375, 500)
    expected = pil_resize(image, 256, 341)[16:240, 58:282]
    view = eval_transform(256, 224)(image)
    assert np.allclose(view, augment.normalize(expected, FINETUNE_MEAN, FINETUNE_STD))
    from uss.data.augment import network_input

    assert np.allclose(network_input(image, 256), augment.normalize(pil_resize(image, 256, 341), FINETUNE_MEAN,
                                                                     FINETUNE_STD))


def test_multicrop_and_finetune_crops_are_pil_resized_crops():
    image = photo()
    rng = np.random.default_rng(5)
    crop, (left, top, w, h) = augment.random_resized_crop(image, 96, (0.05, 0.14), rng)
    assert np.array_equal(crop, pil_resize(image[top:top + h, left:left + w], 96, 96))
    label = np.zeros(image.shape[:2], np.int32)
    out, _, (left, top, w, h), flipped = paired_crop_flip(image, label, 224, (0.08, 1.0), np.random.default_rng(1))
    expected = pil_resize(image[top:top + h, left:left + w], 224, 224)
    assert np.array_equal(out, expected[:, ::-1] if flipped else expected)


def test_multicrop_views_use_the_shared_helper(monkeypatch):
    calls = []
    real = imageops.resize_bilinear
    monkeypatch.setattr(imageops, "resize_bilinear", lambda img, h, w: calls.append((h, w)) or real(img, h, w))
    dataset = MultiCropDataset.__new__(MultiCropDataset)
    dataset.specs = [(96, (0.14, 1.0))] * 2 + [(48, (0.05, 0.14))] * 4
    dataset.grid_size, dataset.blur_sigma, dataset.color_strength = 7, 2.0, 1.0
    crops, _, _ = dataset.make_views(photo(), np.random.default_rng(0))
    assert [c.shape for c in crops] == [(3, 96, 96)] * 2 + [(3, 48, 48)] * 4
    assert calls == [(96, 96)] * 2 + [(48, 48)] * 4


@pytest.mark.parametrize("shape", [(7, 9), (7, 9, 3)])
def test_small_and_gray_inputs(shape):
    image = np.arange(np.prod(shape), dtype=np.uint8).reshape(shape)
    assert np.array_equal(imageops.resize_bilinear(image, 3, 4), pil_resize(image, 3, 4))
    assert imageops.resize_bilinear(image, *shape[:2]) is image
