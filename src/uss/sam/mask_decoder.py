"""SAM mask decoder: output tokens run through the two-way transformer; hypernetwork MLPs turn
mask tokens into per-mask weights over an upscaled image embedding; an MLP head predicts IoU."""
from typing import Tuple

import jittor as jt
from jittor import nn

from uss.sam.layers import GELU, MLP, ActFactory, LayerNorm2d, PatchConvTranspose2d


class MaskDecoder(nn.Module):
    """Predicts mask logits and IoU scores from image and prompt embeddings."""

    def __init__(
        self,
        *,
        transformer_dim: int,
        transformer: nn.Module,
        num_multimask_outputs: int = 3,
        act: ActFactory = GELU,
        iou_head_depth: int = 3,
        iou_head_hidden_dim: int = 256,
    ) -> None:
        self.transformer_dim = transformer_dim
        self.transformer = transformer
        self.num_multimask_outputs = num_multimask_outputs
        self.num_mask_tokens = num_multimask_outputs + 1
        self.iou_token = nn.Embedding(1, transformer_dim)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, transformer_dim)
        self.output_upscaling = nn.Sequential(
            PatchConvTranspose2d(transformer_dim, transformer_dim // 4, 2),
            LayerNorm2d(transformer_dim // 4),
            act(),
            PatchConvTranspose2d(transformer_dim // 4, transformer_dim // 8, 2),
            act(),
        )
        self.output_hypernetworks_mlps = nn.ModuleList(
            [MLP(transformer_dim, transformer_dim, transformer_dim // 8, 3) for _ in range(self.num_mask_tokens)]
        )
        self.iou_prediction_head = MLP(transformer_dim, iou_head_hidden_dim, self.num_mask_tokens, iou_head_depth)

    def execute(
        self,
        image_embeddings: jt.Var,
        image_pe: jt.Var,
        sparse_prompt_embeddings: jt.Var,
        dense_prompt_embeddings: jt.Var,
        multimask_output: bool,
    ) -> Tuple[jt.Var, jt.Var]:
        """Return masks (B, M, 4h, 4w) and IoU predictions (B, M); M = 3 if multimask else 1."""
        masks, iou_pred = self.predict_masks(
            image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings
        )
        if multimask_output:
            return masks[:, 1:], iou_pred[:, 1:]
        return masks[:, :1], iou_pred[:, :1]

    def predict_masks(
        self,
        image_embeddings: jt.Var,
        image_pe: jt.Var,
        sparse_prompt_embeddings: jt.Var,
        dense_prompt_embeddings: jt.Var,
    ) -> Tuple[jt.Var, jt.Var]:
        """Predict all mask-token outputs (B, num_mask_tokens, 4h, 4w) and their IoU scores."""
        bs = sparse_prompt_embeddings.shape[0]
        output_tokens = jt.concat([self.iou_token.weight, self.mask_tokens.weight], dim=0)
        output_tokens = output_tokens.unsqueeze(0).broadcast((bs,) + tuple(output_tokens.shape))
        if sparse_prompt_embeddings.shape[1] > 0:
            tokens = jt.concat([output_tokens, sparse_prompt_embeddings], dim=1)
        else:
            tokens = output_tokens

        src = _repeat_per_prompt(image_embeddings, bs) + dense_prompt_embeddings
        pos_src = _repeat_per_prompt(image_pe, bs)
        b, c, h, w = src.shape

        hs, src = self.transformer(src, pos_src, tokens)
        iou_token_out = hs[:, 0, :]
        mask_tokens_out = hs[:, 1 : 1 + self.num_mask_tokens, :]

        upscaled = self.output_upscaling(src.permute(0, 2, 1).reshape(b, c, h, w))
        hyper_in = jt.stack(
            [mlp(mask_tokens_out[:, i, :]) for i, mlp in enumerate(self.output_hypernetworks_mlps)], dim=1
        )
        b, c, h, w = upscaled.shape
        masks = jt.matmul(hyper_in, upscaled.reshape(b, c, h * w)).reshape(b, -1, h, w)
        iou_pred = self.iou_prediction_head(iou_token_out)
        return masks, iou_pred


def _repeat_per_prompt(x: jt.Var, repeats: int) -> jt.Var:
    """Repeat each batch entry of x `repeats` times consecutively (repeat_interleave on dim 0)."""
    if repeats == 1:
        return x
    n = x.shape[0]
    rest = tuple(x.shape[1:])
    return x.unsqueeze(1).broadcast((n, repeats) + rest).reshape((n * repeats,) + rest)
