"""Weights written by other code (PASS PyTorch/Jittor, the 2023 challenge entry, SwAV/DINO torchvision ResNets)
in this package's names, and the model configuration such a file implies (it has no saved arguments)."""
import re
from typing import Any, Dict, Mapping

import numpy as np

from uss.errors import CheckpointError

BACKBONE = "backbone."
# ResNet depth by (bottleneck blocks?, blocks per stage).
_DEPTHS = {(False, (2, 2, 2, 2)): 18, (False, (3, 4, 6, 3)): 34, (True, (3, 4, 6, 3)): 50, (True, (3, 4, 23, 3)): 101}
_BACKBONE_KEY = re.compile(r"^(conv1|bn1|layer[1-4])\.")
_PASS_SHALLOW_KEYS = (
    (re.compile(r"^projection_head_pixel_shallow\.projection_head_pixel(\d)\."), r"shallow_head\1.pixel."),
    (re.compile(r"^projection_head_shallow\.projection_head_shallow(\d)\."), r"shallow_head\1.projection."),
)


def convert_pass_state_dict(state_dict: Mapping[str, Any]) -> Dict[str, Any]:
    """Rename a LUSSeg/PASS (or torchvision/SwAV) ResNet state dict to this package's parameter names.

    Strips DDP's `module.`, prefixes backbone keys with `backbone.`, maps PASS's shallow heads to
    `shallow_head{s}.pixel/projection`, drops `num_batches_tracked` and `fc.*`; other names
    (projection_head, prototypes, projection_head_pixel, predictor_head_pixel, fbg) are already equal.
    """
    out: Dict[str, Any] = {}
    for key, value in state_dict.items():
        if key.startswith("module."):
            key = key[len("module."):]
        if key.endswith("num_batches_tracked") or key.startswith("fc."):
            continue
        if _BACKBONE_KEY.match(key):
            key = "backbone." + key
        for pattern, repl in _PASS_SHALLOW_KEYS:
            key = pattern.sub(repl, key)
        out[key] = value
    return out


def tensors_of(checkpoint: Any, path: str) -> Dict[str, Any]:
    """The state dict of a checkpoint: its 'state_dict' (PASS, this project) or 'model' entry, or the dict itself."""
    if isinstance(checkpoint, Mapping):
        for wrapper in ("state_dict", "model"):
            inner = checkpoint.get(wrapper)
            if isinstance(inner, Mapping) and inner and all(isinstance(k, str) for k in inner):
                return dict(inner)
        if checkpoint and all(isinstance(k, str) and isinstance(v, np.ndarray) for k, v in checkpoint.items()):
            return dict(checkpoint)
    raise CheckpointError(f"{path}: holds no state dict (no 'state_dict' entry of tensors)")


def is_foreign(weights: Mapping[str, Any]) -> bool:
    """True when no key has this package's `backbone.` prefix (PASS, torchvision, SwAV, DINO, challenge names)."""
    return not any(k.startswith(BACKBONE) for k in weights)


def to_package_names(weights: Mapping[str, Any]) -> Dict[str, Any]:
    """This package's names for a foreign state dict: `module.` stripped, backbone keys under `backbone.`, PASS's
    shallow heads renamed, `fc.*` / `num_batches_tracked` dropped; a fine-tuning head `last_layer.*` becomes
    `head.*` (UPerNet: the challenge entry's mmseg names equal ours) or `head.conv.*` (PASS's 1x1 conv)."""
    if not is_foreign(weights):
        return dict(weights)
    converted = convert_pass_state_dict(weights)
    upernet = any(k.startswith("last_layer.conv_seg.") for k in converted)
    out = {}
    for key, value in converted.items():
        if key.startswith("last_layer."):
            key = ("head." if upernet else "head.conv.") + key[len("last_layer."):]
        out[key] = value
    return out


def resnet_arch(weights: Mapping[str, Any], path: str) -> str:
    """'resnet18' ... 'resnet101' from the blocks of a state dict in this package's names."""
    blocks = []
    for stage in range(1, 5):
        indices = {int(m.group(1)) for k in weights for m in [re.match(rf"backbone\.layer{stage}\.(\d+)\.", k)] if m}
        blocks.append(max(indices) + 1 if indices else 0)
    depth = _DEPTHS.get((f"{BACKBONE}layer1.0.conv3.weight" in weights, tuple(blocks)))
    if depth is None:
        raise CheckpointError(f"{path}: not a ResNet-18/34/50/101 state dict (blocks per stage {blocks})")
    return f"resnet{depth}"


def pixel_attention_config(weights: Mapping[str, Any], path: str) -> Dict[str, Any]:
    """arch, nmb_prototypes, feat_dim, hidden_mlp of a pixel-attention state dict without saved arguments."""
    prototypes, first = weights.get("prototypes.weight"), weights.get("projection_head.0.weight")
    if prototypes is None or first is None or "fbg.threshold" not in weights:
        raise CheckpointError(f"{path}: not a pixel-attention checkpoint (needs fbg.*, projection_head.*, "
                              f"prototypes.weight)")
    return {"arch": resnet_arch(weights, path), "nmb_prototypes": int(np.shape(prototypes)[0]),
            "feat_dim": int(np.shape(prototypes)[1]),
            "hidden_mlp": int(np.shape(first)[0]) if "projection_head.3.weight" in weights else 0}


def finetune_config(weights: Mapping[str, Any], path: str) -> Dict[str, Any]:
    """arch, head, num_classes of a fine-tuned state dict without saved arguments."""
    for head, key in (("upernet", "head.conv_seg.weight"), ("linear", "head.conv.weight")):
        if key in weights:
            return {"arch": resnet_arch(weights, path), "head": head, "num_classes": int(np.shape(weights[key])[0]) - 1}
    raise CheckpointError(f"{path}: holds no segmentation head (last_layer.* / head.*): not a fine-tuning "
                          f"checkpoint? (pass --arch and --num-classes for a foreign one)")


def keep_prefixes(weights: Mapping[str, Any], prefixes: tuple) -> Dict[str, Any]:
    """The entries under `prefixes` (a foreign file also holds heads the target model does not have)."""
    return {k: v for k, v in weights.items() if k.startswith(prefixes)}
