"""SAM image encoder: a plain ViT with windowed and global attention, decomposed relative
position terms, and a convolutional neck producing a 256-channel embedding map."""
from typing import Optional, Sequence, Tuple

import numpy as np
import jittor as jt
from jittor import nn

from uss.sam.layers import GELU, ActFactory, LayerNorm, LayerNorm2d, MLPBlock


def _linear_resize_matrix(in_len: int, out_len: int) -> np.ndarray:
    """(out_len, in_len) matrix of 1-D linear interpolation with half-pixel centres."""
    mat = np.zeros((out_len, in_len), dtype=np.float64)
    scale = in_len / out_len
    for i in range(out_len):
        src = max((i + 0.5) * scale - 0.5, 0.0)
        lo = min(int(src), in_len - 1)
        hi = min(lo + 1, in_len - 1)
        frac = src - lo
        mat[i, lo] += 1.0 - frac
        mat[i, hi] += frac
    return mat


def relative_position_table(q_size: int, k_size: int, rel_pos: jt.Var) -> jt.Var:
    """Gather the (q_size, k_size, C) relative-position embeddings for a query/key axis pair."""
    span = 2 * max(q_size, k_size) - 1
    table = rel_pos
    if rel_pos.shape[0] != span:
        resize = jt.array(_linear_resize_matrix(rel_pos.shape[0], span).astype(np.float32))
        table = jt.matmul(resize, rel_pos)
    q_scale = max(k_size / q_size, 1.0)
    k_scale = max(q_size / k_size, 1.0)
    q_pos = np.arange(q_size, dtype=np.float64)[:, None] * q_scale
    k_pos = np.arange(k_size, dtype=np.float64)[None, :] * k_scale
    index = (q_pos - k_pos + (k_size - 1) * k_scale).astype(np.int64)
    flat = table[jt.array(index.reshape(-1).astype(np.int32))]
    return flat.reshape(q_size, k_size, -1)


def add_relative_position_bias(
    attn: jt.Var,
    q: jt.Var,
    rel_pos_h: jt.Var,
    rel_pos_w: jt.Var,
    q_size: Tuple[int, int],
    k_size: Tuple[int, int],
) -> jt.Var:
    """Add height and width relative-position terms (MViTv2 style) to attention logits."""
    qh, qw = q_size
    kh, kw = k_size
    table_h = relative_position_table(qh, kh, rel_pos_h)  # (qh, kh, C)
    table_w = relative_position_table(qw, kw, rel_pos_w)  # (qw, kw, C)
    batch, _, dim = q.shape
    grid_q = q.reshape(batch, qh, qw, dim)
    # bias_h[b, y, x, ky] = <q[b, y, x], table_h[y, ky]>
    by_row = grid_q.permute(1, 0, 2, 3).reshape(qh, batch * qw, dim)
    bias_h = jt.matmul(by_row, table_h.permute(0, 2, 1)).reshape(qh, batch, qw, kh).permute(1, 0, 2, 3)
    # bias_w[b, y, x, kx] = <q[b, y, x], table_w[x, kx]>
    by_col = grid_q.permute(2, 0, 1, 3).reshape(qw, batch * qh, dim)
    bias_w = jt.matmul(by_col, table_w.permute(0, 2, 1)).reshape(qw, batch, qh, kw).permute(1, 2, 0, 3)
    attn = attn.reshape(batch, qh, qw, kh, kw) + bias_h.unsqueeze(4) + bias_w.unsqueeze(3)
    return attn.reshape(batch, qh * qw, kh * kw)


def window_partition(x: jt.Var, window: int) -> Tuple[jt.Var, Tuple[int, int]]:
    """Zero-pad (B, H, W, C) to window multiples and split into (B*nW, window, window, C)."""
    b, h, w, c = x.shape
    pad_h = (window - h % window) % window
    pad_w = (window - w % window) % window
    if pad_h or pad_w:
        if pad_w:
            x = jt.concat([x, jt.zeros((b, h, pad_w, c), dtype=x.dtype)], dim=2)
        if pad_h:
            x = jt.concat([x, jt.zeros((b, pad_h, w + pad_w, c), dtype=x.dtype)], dim=1)
    hp, wp = h + pad_h, w + pad_w
    x = x.reshape(b, hp // window, window, wp // window, window, c)
    windows = x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window, window, c)
    return windows, (hp, wp)


def window_unpartition(
    windows: jt.Var, window: int, padded_hw: Tuple[int, int], hw: Tuple[int, int]
) -> jt.Var:
    """Inverse of window_partition: reassemble windows into (B, H, W, C), dropping padding."""
    hp, wp = padded_hw
    h, w = hw
    b = windows.shape[0] // ((hp // window) * (wp // window))
    x = windows.reshape(b, hp // window, wp // window, window, window, -1)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, -1)
    if hp > h or wp > w:
        x = x[:, :h, :w, :]
    return x


class Attention(nn.Module):
    """Multi-head self-attention over a 2-D token grid, optionally with relative positions."""

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        qkv_bias: bool = True,
        use_rel_pos: bool = False,
        input_size: Optional[Tuple[int, int]] = None,
    ) -> None:
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.scale = head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.use_rel_pos = use_rel_pos
        if use_rel_pos:
            if input_size is None:
                raise ValueError("relative position embeddings need the attention input size")
            self.rel_pos_h = jt.zeros((2 * input_size[0] - 1, head_dim), dtype="float32")
            self.rel_pos_w = jt.zeros((2 * input_size[1] - 1, head_dim), dtype="float32")

    def execute(self, x: jt.Var) -> jt.Var:
        """Attend within x of shape (B, H, W, C)."""
        b, h, w, _ = x.shape
        n, heads = h * w, self.num_heads
        qkv = self.qkv(x).reshape(b, n, 3, heads, -1).permute(2, 0, 3, 1, 4)
        qkv = qkv.reshape(3, b * heads, n, -1)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = jt.matmul(q * self.scale, k.permute(0, 2, 1))
        if self.use_rel_pos:
            attn = add_relative_position_bias(attn, q, self.rel_pos_h, self.rel_pos_w, (h, w), (h, w))
        attn = nn.softmax(attn, dim=-1)
        out = jt.matmul(attn, v).reshape(b, heads, h, w, -1).permute(0, 2, 3, 1, 4).reshape(b, h, w, -1)
        return self.proj(out)


class Block(nn.Module):
    """Pre-norm transformer block; window_size > 0 restricts attention to local windows."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        norm_eps: float = 1e-6,
        act: ActFactory = GELU,
        use_rel_pos: bool = False,
        window_size: int = 0,
        input_size: Optional[Tuple[int, int]] = None,
    ) -> None:
        self.norm1 = LayerNorm(dim, eps=norm_eps)
        attn_size = input_size if window_size == 0 else (window_size, window_size)
        self.attn = Attention(dim, num_heads, qkv_bias, use_rel_pos, attn_size)
        self.norm2 = LayerNorm(dim, eps=norm_eps)
        self.mlp = MLPBlock(dim, int(dim * mlp_ratio), act)
        self.window_size = window_size

    def execute(self, x: jt.Var) -> jt.Var:
        """Apply attention and MLP residual branches to x of shape (B, H, W, C)."""
        residual = x
        x = self.norm1(x)
        if self.window_size > 0:
            h, w = x.shape[1], x.shape[2]
            x, padded = window_partition(x, self.window_size)
            x = self.attn(x)
            x = window_unpartition(x, self.window_size, padded, (h, w))
        else:
            x = self.attn(x)
        x = residual + x
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    """Non-overlapping patch projection returning channels-last tokens (B, H, W, C)."""

    def __init__(self, patch_size: int = 16, in_chans: int = 3, embed_dim: int = 768) -> None:
        self.proj = nn.Conv2d(in_chans, embed_dim, patch_size, stride=patch_size)

    def execute(self, x: jt.Var) -> jt.Var:
        """Project (B, 3, H, W) pixels to (B, H/p, W/p, C) tokens."""
        return self.proj(x).permute(0, 2, 3, 1)


class ImageEncoderViT(nn.Module):
    """ViT backbone of SAM mapping a padded square image to a (B, out_chans, H/16, W/16) map."""

    def __init__(
        self,
        img_size: int = 1024,
        patch_size: int = 16,
        in_chans: int = 3,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        out_chans: int = 256,
        qkv_bias: bool = True,
        norm_eps: float = 1e-6,
        act: ActFactory = GELU,
        use_abs_pos: bool = True,
        use_rel_pos: bool = True,
        window_size: int = 14,
        global_attn_indexes: Sequence[int] = (),
    ) -> None:
        self.img_size = img_size
        grid = img_size // patch_size
        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim)
        self.pos_embed = jt.zeros((1, grid, grid, embed_dim), dtype="float32") if use_abs_pos else None
        self.blocks = nn.ModuleList(
            [
                Block(
                    dim=embed_dim,
                    num_heads=num_heads,
                    mlp_ratio=mlp_ratio,
                    qkv_bias=qkv_bias,
                    norm_eps=norm_eps,
                    act=act,
                    use_rel_pos=use_rel_pos,
                    window_size=0 if i in global_attn_indexes else window_size,
                    input_size=(grid, grid),
                )
                for i in range(depth)
            ]
        )
        self.neck = nn.Sequential(
            nn.Conv2d(embed_dim, out_chans, 1, bias=False),
            LayerNorm2d(out_chans),
            nn.Conv2d(out_chans, out_chans, 3, padding=1, bias=False),
            LayerNorm2d(out_chans),
        )

    def execute(self, x: jt.Var) -> jt.Var:
        """Encode normalised, padded images (B, 3, S, S)."""
        x = self.patch_embed(x)
        if self.pos_embed is not None:
            x = x + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.neck(x.permute(0, 3, 1, 2))
