"""Small building blocks shared by the SAM image encoder, prompt encoder and mask decoder."""
from typing import Callable, List

import jittor as jt
from jittor import nn

ActFactory = Callable[[], nn.Module]


class LayerNorm(nn.Module):
    """Layer normalisation over the last dimension, computed in two passes for float32 accuracy."""

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        self.eps = eps
        self.weight = jt.ones((num_features,), dtype="float32")
        self.bias = jt.zeros((num_features,), dtype="float32")

    def execute(self, x: jt.Var) -> jt.Var:
        """Normalise x of shape (..., C)."""
        centred = x - x.mean(-1, keepdims=True)
        var = (centred * centred).mean(-1, keepdims=True)
        return centred / jt.sqrt(var + self.eps) * self.weight + self.bias


class LayerNorm2d(nn.Module):
    """Layer normalisation over the channel dimension of a (B, C, H, W) tensor."""

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        self.eps = eps
        self.weight = jt.ones((num_channels,), dtype="float32")
        self.bias = jt.zeros((num_channels,), dtype="float32")

    def execute(self, x: jt.Var) -> jt.Var:
        """Normalise x of shape (B, C, H, W) across C."""
        centred = x - x.mean(1, keepdims=True)
        var = (centred * centred).mean(1, keepdims=True)
        normed = centred / jt.sqrt(var + self.eps)
        return normed * self.weight.reshape(1, -1, 1, 1) + self.bias.reshape(1, -1, 1, 1)


class GELU(nn.Module):
    """Exact (erf-based) GELU activation."""

    def execute(self, x: jt.Var) -> jt.Var:
        """Apply x * Phi(x)."""
        return x * 0.5 * (1.0 + jt.erf(x * 0.7071067811865476))


class ReLU(nn.Module):
    """Rectified linear unit."""

    def execute(self, x: jt.Var) -> jt.Var:
        """Apply max(x, 0)."""
        return jt.maximum(x, 0.0)


class MLPBlock(nn.Module):
    """Two linear layers with an activation in between (transformer feed-forward)."""

    def __init__(self, embedding_dim: int, mlp_dim: int, act: ActFactory = GELU) -> None:
        self.lin1 = nn.Linear(embedding_dim, mlp_dim)
        self.lin2 = nn.Linear(mlp_dim, embedding_dim)
        self.act = act()

    def execute(self, x: jt.Var) -> jt.Var:
        """Feed-forward x through lin1, act, lin2."""
        return self.lin2(self.act(self.lin1(x)))


class MLP(nn.Module):
    """Stack of linear layers with ReLU between them (used by the mask decoder heads)."""

    def __init__(
        self,
        input_dim: int,
        hidden_dim: int,
        output_dim: int,
        num_layers: int,
        sigmoid_output: bool = False,
    ) -> None:
        dims_in: List[int] = [input_dim] + [hidden_dim] * (num_layers - 1)
        dims_out: List[int] = [hidden_dim] * (num_layers - 1) + [output_dim]
        self.num_layers = num_layers
        self.layers = nn.ModuleList([nn.Linear(i, o) for i, o in zip(dims_in, dims_out)])
        self.sigmoid_output = sigmoid_output

    def execute(self, x: jt.Var) -> jt.Var:
        """Apply the layers with ReLU on all but the last."""
        for idx, layer in enumerate(self.layers):
            x = layer(x)
            if idx < self.num_layers - 1:
                x = jt.maximum(x, 0.0)
        return jt.sigmoid(x) if self.sigmoid_output else x


class PatchConvTranspose2d(nn.Module):
    """Transposed convolution whose kernel equals its stride (non-overlapping), as a matmul.

    Parameters use the PyTorch ConvTranspose2d layout: weight (in, out, k, k), bias (out,).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 2, bias: bool = True) -> None:
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        bound = 1.0 / (out_channels * kernel_size * kernel_size) ** 0.5
        shape = (in_channels, out_channels, kernel_size, kernel_size)
        self.weight = jt.init.uniform(shape, "float32", -bound, bound)
        self.bias = jt.init.uniform((out_channels,), "float32", -bound, bound) if bias else None

    def execute(self, x: jt.Var) -> jt.Var:
        """Upsample (B, Cin, H, W) to (B, Cout, k*H, k*W)."""
        b, c, h, w = x.shape
        k, o = self.kernel_size, self.out_channels
        tokens = x.permute(0, 2, 3, 1).reshape(b * h * w, c)
        out = jt.matmul(tokens, self.weight.reshape(c, o * k * k))
        out = out.reshape(b, h, w, o, k, k).permute(0, 3, 1, 4, 2, 5).reshape(b, o, h * k, w * k)
        if self.bias is not None:
            out = out + self.bias.reshape(1, -1, 1, 1)
        return out
