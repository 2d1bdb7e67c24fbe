"""Model configurations (vit_h / vit_l / vit_b as released, plus a tiny test config) and builders."""
from dataclasses import asdict, dataclass
from typing import Dict, Optional, Tuple

from uss.sam.image_encoder import ImageEncoderViT
from uss.sam.mask_decoder import MaskDecoder
from uss.sam.prompt_encoder import PromptEncoder
from uss.sam.sam import Sam
from uss.sam.transformer import TwoWayTransformer


@dataclass(frozen=True)
class SamConfig:
    """Every constructor argument that differs between SAM variants."""

    encoder_embed_dim: int
    encoder_depth: int
    encoder_num_heads: int
    encoder_global_attn_indexes: Tuple[int, ...]
    img_size: int = 1024
    patch_size: int = 16
    window_size: int = 14
    mlp_ratio: float = 4.0
    prompt_embed_dim: int = 256
    mask_in_chans: int = 16
    decoder_depth: int = 2
    decoder_mlp_dim: int = 2048
    decoder_num_heads: int = 8
    num_multimask_outputs: int = 3
    iou_head_depth: int = 3
    iou_head_hidden_dim: int = 256

    @property
    def image_embedding_size(self) -> int:
        """Side of the image-embedding grid."""
        return self.img_size // self.patch_size

    def to_dict(self) -> Dict[str, object]:
        """Plain dict view (for logging or building the same model elsewhere)."""
        return asdict(self)


SAM_CONFIGS: Dict[str, SamConfig] = {
    "vit_h": SamConfig(1280, 32, 16, (7, 15, 23, 31)),
    "vit_l": SamConfig(1024, 24, 16, (5, 11, 17, 23)),
    "vit_b": SamConfig(768, 12, 12, (2, 5, 8, 11)),
    # Small config for tests and benchmarks: 256 px input, 16x16 token grid, 7x7 windows (padded).
    "vit_tiny": SamConfig(
        encoder_embed_dim=64,
        encoder_depth=2,
        encoder_num_heads=2,
        encoder_global_attn_indexes=(1,),
        img_size=256,
        window_size=7,
        prompt_embed_dim=64,
        mask_in_chans=16,
        decoder_depth=2,
        decoder_mlp_dim=256,
        decoder_num_heads=2,
        iou_head_hidden_dim=64,
    ),
}
SAM_CONFIGS["default"] = SAM_CONFIGS["vit_h"]


def build_sam_from_config(config: SamConfig) -> Sam:
    """Construct an (untrained) SAM in eval mode from a config."""
    grid = config.image_embedding_size
    sam = Sam(
        image_encoder=ImageEncoderViT(
            img_size=config.img_size,
            patch_size=config.patch_size,
            embed_dim=config.encoder_embed_dim,
            depth=config.encoder_depth,
            num_heads=config.encoder_num_heads,
            mlp_ratio=config.mlp_ratio,
            out_chans=config.prompt_embed_dim,
            qkv_bias=True,
            norm_eps=1e-6,
            use_rel_pos=True,
            window_size=config.window_size,
            global_attn_indexes=tuple(config.encoder_global_attn_indexes),
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=config.prompt_embed_dim,
            image_embedding_size=(grid, grid),
            input_image_size=(config.img_size, config.img_size),
            mask_in_chans=config.mask_in_chans,
        ),
        mask_decoder=MaskDecoder(
            transformer_dim=config.prompt_embed_dim,
            transformer=TwoWayTransformer(
                depth=config.decoder_depth,
                embedding_dim=config.prompt_embed_dim,
                num_heads=config.decoder_num_heads,
                mlp_dim=config.decoder_mlp_dim,
            ),
            num_multimask_outputs=config.num_multimask_outputs,
            iou_head_depth=config.iou_head_depth,
            iou_head_hidden_dim=config.iou_head_hidden_dim,
        ),
    )
    sam.eval()
    return sam


def build_sam(model_type: str = "vit_h", checkpoint: Optional[str] = None) -> Sam:
    """Build SAM of the given type ('vit_h', 'vit_l', 'vit_b', 'vit_tiny'); load an official .pth if given."""
    if model_type not in SAM_CONFIGS:
        raise ValueError(f"unknown SAM model type {model_type!r}; choose from {sorted(SAM_CONFIGS)}")
    sam = build_sam_from_config(SAM_CONFIGS[model_type])
    if checkpoint is not None:
        from uss.checkpoints.sam import load_sam_checkpoint

        load_sam_checkpoint(sam, checkpoint)
    return sam
