"""Models rebuilt from their checkpoints, in eval mode: the pixel-attention model (pseudo labels, clustering)
and the fine-tuned segmentation model (inference, test.py). Saved arguments configure them; a foreign file
(PASS's or the challenge entry's releases, which save none) is configured from its tensors."""
from typing import Any, Dict, Mapping, Optional, Tuple

from uss.checkpoints import foreign
from uss.checkpoints.native import CheckpointError, load_checkpoint, load_model_state
from uss.models.decode_heads import head_options
from uss.models.pass_model import build_model
from uss.models.resnet import backbone_options
from uss.models.segmentation import BACKBONE, SegmentationModel, build_segmentation_model


def load_pixel_attention_model(path: str):
    """Rebuild the PixelAttentionModel a pixel-attention checkpoint was trained as, with its weights, in eval mode."""
    state = load_checkpoint(path)
    saved = state.get("args", {}) if isinstance(state, dict) else {}
    weights = foreign.tensors_of(state, path)
    if "arch" not in saved:
        # PASS's released *_pixelatt.pth.tar or the challenge entry's infer_pixel_attnetion_checkpoint.pth.tar:
        # no saved arguments, PASS names; the tensors give the configuration.
        weights = foreign.to_package_names(weights)
        saved = foreign.pixel_attention_config(weights, path)
        weights = foreign.keep_prefixes(weights, ("backbone.", "fbg.", "projection_head.", "prototypes."))
    model = build_model(saved["arch"], "pixel_attention", n_prototypes=saved["nmb_prototypes"],
                        feat_dim=saved["feat_dim"], hidden_dim=saved.get("hidden_mlp"), **backbone_options(saved))
    load_model_state(model, weights, path)
    model.eval()
    return model


def load_finetuned(checkpoint_path: str, arch: Optional[str] = None, head: Optional[str] = None,
                   num_classes: Optional[int] = None) -> Tuple[SegmentationModel, Dict[str, Any]]:
    """The fine-tuned model of a checkpoint, configured from its saved args (overridable), in eval mode.

    Returns (model, config with arch, head, num_classes, epoch)."""
    state = load_checkpoint(checkpoint_path)
    saved = state.get("args") or {}
    if not saved and isinstance(state, dict) and arch is None and num_classes is None:
        # A foreign file (PASS, the challenge entry's weights/checkpoint.pth.tar) saves no arguments: its tensors tell.
        try:
            saved = foreign.finetune_config(model_weights(state), checkpoint_path)
        except CheckpointError as error:
            raise CheckpointError(f"{error}" if str(error).startswith(checkpoint_path)
                                  else f"{checkpoint_path}: {error}") from None
    config = {"arch": arch or saved.get("arch"), "head": head or saved.get("head") or "linear",
              "num_classes": num_classes if num_classes is not None else saved.get("num_classes")}
    if config["arch"] is None or config["num_classes"] is None:
        raise CheckpointError(f"{checkpoint_path}: no saved fine-tuning arguments (arch, num_classes): not a "
                              f"fine-tuning checkpoint? (pass --arch and --num-classes for a foreign one)")
    backbone = backbone_options(saved)
    config.update(backbone)
    model = build_segmentation_model(config["arch"], int(config["num_classes"]), config["head"], **backbone,
                                     **head_options({**saved, "head": config["head"]}))
    try:
        weights = model_weights(state)
    except CheckpointError as error:
        raise CheckpointError(f"{checkpoint_path}: {error}") from None
    load_model_state(model, weights, checkpoint_path)
    model.eval()
    config["epoch"] = state.get("epoch")
    return model, config


def model_weights(checkpoint: Mapping[str, Any]) -> Dict[str, Any]:
    """The tensors of a checkpoint dict (its 'state_dict', or the dict itself), in this package's names;
    of a foreign file (PASS, torchvision, challenge entry) only the backbone and segmentation head."""
    weights = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, Mapping) else None
    if not isinstance(weights, Mapping):
        raise CheckpointError("checkpoint holds no state_dict")
    if foreign.is_foreign(weights):
        return foreign.keep_prefixes(foreign.to_package_names(weights), (BACKBONE, "head."))
    return dict(weights)


def load_pretrained_backbone(model: SegmentationModel, checkpoint_path: str) -> int:
    """Load `backbone.*` from a pretraining (or pixel-attention / fine-tuning) checkpoint; heads are left as built.

    Every backbone tensor of the model must be in the file with the right shape; a missing or
    mismatched one raises CheckpointError naming the file. Returns the number of tensors loaded.
    """
    try:
        weights = model_weights(load_checkpoint(checkpoint_path))
    except CheckpointError as error:
        if str(error).startswith(checkpoint_path):
            raise
        raise CheckpointError(f"{checkpoint_path}: {error}") from None
    backbone = {k[len(BACKBONE):]: v for k, v in weights.items() if k.startswith(BACKBONE)}
    if not backbone:
        raise CheckpointError(f"{checkpoint_path}: holds no backbone.* tensors (not a PASS pretraining checkpoint?)")
    own = model.backbone.state_dict()
    missing = sorted(k for k in own if k not in backbone)
    if missing:
        raise CheckpointError(
            f"{checkpoint_path}: {len(missing)} backbone tensors of the model are missing from the checkpoint "
            f"(wrong --arch?): {[BACKBONE + k for k in missing[:6]]}{' ...' if len(missing) > 6 else ''}")
    try:
        load_model_state(model.backbone, backbone, checkpoint_path)  # names unexpected / mis-shaped tensors
    except CheckpointError as error:
        raise CheckpointError(f"{error} (names relative to backbone.; wrong --arch?)") from None
    return len(backbone)
