"""Two-way transformer of the SAM mask decoder: prompt tokens and image tokens attend to each other."""
import math
from typing import Tuple

import jittor as jt
from jittor import nn

from uss.sam.layers import ActFactory, LayerNorm, MLPBlock, ReLU


class Attention(nn.Module):
    """Multi-head attention with separate q/k/v projections, optionally to a reduced inner width."""

    def __init__(self, embedding_dim: int, num_heads: int, downsample_rate: int = 1) -> None:
        self.embedding_dim = embedding_dim
        self.internal_dim = embedding_dim // downsample_rate
        self.num_heads = num_heads
        if self.internal_dim % num_heads != 0:
            raise ValueError("num_heads must divide embedding_dim // downsample_rate")
        self.q_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.k_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.v_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.out_proj = nn.Linear(self.internal_dim, embedding_dim)

    def _split_heads(self, x: jt.Var) -> jt.Var:
        """(B, N, C) -> (B, heads, N, C/heads)."""
        b, n, c = x.shape
        return x.reshape(b, n, self.num_heads, c // self.num_heads).permute(0, 2, 1, 3)

    @staticmethod
    def _merge_heads(x: jt.Var) -> jt.Var:
        """(B, heads, N, c) -> (B, N, heads*c)."""
        b, h, n, c = x.shape
        return x.permute(0, 2, 1, 3).reshape(b, n, h * c)

    def execute(self, q: jt.Var, k: jt.Var, v: jt.Var) -> jt.Var:
        """Attend queries q (B, Nq, C) to keys k / values v (B, Nk, C)."""
        q = self._split_heads(self.q_proj(q))
        k = self._split_heads(self.k_proj(k))
        v = self._split_heads(self.v_proj(v))
        attn = jt.matmul(q, k.permute(0, 1, 3, 2)) / math.sqrt(q.shape[-1])
        attn = nn.softmax(attn, dim=-1)
        return self.out_proj(self._merge_heads(jt.matmul(attn, v)))


class TwoWayAttentionBlock(nn.Module):
    """Token self-attention, token->image cross-attention, token MLP, image->token cross-attention."""

    def __init__(
        self,
        embedding_dim: int,
        num_heads: int,
        mlp_dim: int = 2048,
        act: ActFactory = ReLU,
        attention_downsample_rate: int = 2,
        skip_first_layer_pe: bool = False,
    ) -> None:
        self.self_attn = Attention(embedding_dim, num_heads)
        self.norm1 = LayerNorm(embedding_dim)
        self.cross_attn_token_to_image = Attention(embedding_dim, num_heads, attention_downsample_rate)
        self.norm2 = LayerNorm(embedding_dim)
        self.mlp = MLPBlock(embedding_dim, mlp_dim, act)
        self.norm3 = LayerNorm(embedding_dim)
        self.norm4 = LayerNorm(embedding_dim)
        self.cross_attn_image_to_token = Attention(embedding_dim, num_heads, attention_downsample_rate)
        self.skip_first_layer_pe = skip_first_layer_pe

    def execute(self, queries: jt.Var, keys: jt.Var, query_pe: jt.Var, key_pe: jt.Var) -> Tuple[jt.Var, jt.Var]:
        """Update (queries, keys); the PE tensors are added before every attention."""
        if self.skip_first_layer_pe:
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)

        q = queries + query_pe
        k = keys + key_pe
        queries = self.norm2(queries + self.cross_attn_token_to_image(q, k, keys))

        queries = self.norm3(queries + self.mlp(queries))

        q = queries + query_pe
        k = keys + key_pe
        keys = self.norm4(keys + self.cross_attn_image_to_token(k, q, queries))
        return queries, keys


class TwoWayTransformer(nn.Module):
    """Stack of two-way attention blocks followed by a final token->image attention."""

    def __init__(
        self,
        depth: int,
        embedding_dim: int,
        num_heads: int,
        mlp_dim: int,
        act: ActFactory = ReLU,
        attention_downsample_rate: int = 2,
    ) -> None:
        self.depth = depth
        self.embedding_dim = embedding_dim
        self.num_heads = num_heads
        self.mlp_dim = mlp_dim
        self.layers = nn.ModuleList(
            [
                TwoWayAttentionBlock(
                    embedding_dim, num_heads, mlp_dim, act, attention_downsample_rate, skip_first_layer_pe=(i == 0)
                )
                for i in range(depth)
            ]
        )
        self.final_attn_token_to_image = Attention(embedding_dim, num_heads, attention_downsample_rate)
        self.norm_final_attn = LayerNorm(embedding_dim)

    def execute(self, image_embedding: jt.Var, image_pe: jt.Var, point_embedding: jt.Var) -> Tuple[jt.Var, jt.Var]:
        """Run on image (B, C, h, w), its PE (B, C, h, w) and tokens (B, N, C); return (tokens, image tokens)."""
        b, c, h, w = image_embedding.shape
        keys = image_embedding.reshape(b, c, h * w).permute(0, 2, 1)
        key_pe = image_pe.reshape(image_pe.shape[0], c, h * w).permute(0, 2, 1)
        queries = point_embedding
        for layer in self.layers:
            queries, keys = layer(queries, keys, point_embedding, key_pe)
        q = queries + point_embedding
        k = keys + key_pe
        queries = self.norm_final_attn(queries + self.final_attn_token_to_image(q, k, keys))
        return queries, keys
