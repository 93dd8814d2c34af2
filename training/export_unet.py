"""The UNet as it is exported to ONNX: the function of training.unet.UNet, laid out for ONNX Runtime.

On the 1x4x4 latent the denoiser is dispatch-bound: hundreds of tiny ops of a few microseconds each,
not FLOPs. The exported form computes the same thing with fewer, larger ops (docs/runtime.md has the
measurements):

- Levels whose maps have at most 9 pixels (the 2x2 and 1x1 levels of the paper config) run flattened,
  [B, C*H*W] channel-major. A 3x3 conv there is one Gemm with the conv's exact dense matrix for that map
  size, built by applying the conv to a basis. With H*W <= 9 (the kernel's area) that matrix has no more
  entries than the conv's own im2col product, and the level needs no NCHWc reorders or 4-D reshapes.
  GroupNorm works unchanged on the flat layout: its groups are contiguous channel blocks.
- Every ResBlock's timestep projection comes from one Gemm, with all blocks' weights stacked. In flat
  levels, conv1's bias is folded in and conv1 adds the projection as Gemm's C input.
- Cross-attention attends to one context token, so its softmax is 1 and its output is
  to_out(to_v(context)) for every query. All blocks' outputs come from one Gemm on the context
  (to_out @ to_v folded), independent of the latent. Self-attention over one pixel is the same.
- Transformer tokens are 2-D [B*HW, C], so each Linear is a plain Gemm. On 3-D tokens ORT fuses
  MatMul+Add into a Gemm with a Reshape on each side. GroupNorm's affine is folded into proj_in, which
  follows it with nothing nonlinear between.

The weights are the trained ones, rearranged at construction; results differ from UNet only by float
rounding (summation order). training.export verifies the ONNX graph against the unmodified UNet.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from training.unet import Attention, ResBlock, SpatialTransformer, UNet, timestep_embedding

# a 3x3 kernel's area: on maps this small a dense matrix is no bigger than the conv's im2col work
FLAT_MAX_PIXELS = 9


def is_flat(size: int) -> bool:
    return size * size <= FLAT_MAX_PIXELS


@torch.no_grad()
def dense_map(
    fn: Callable[[torch.Tensor], torch.Tensor], in_shape: tuple[int, ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(W, b) with fn(x).flatten(1) == x.flatten(1) @ W.T + b for inputs of in_shape (no batch dim):
    the exact matrix of an affine map, e.g. a conv (after nearest upsampling) on one map size."""
    n = 1
    for d in in_shape:
        n *= d
    b = fn(torch.zeros(1, *in_shape)).reshape(-1)
    W = fn(torch.eye(n).reshape(n, *in_shape)).reshape(n, -1) - b
    return W.t().contiguous(), b.clone()


def _per_pixel(v: torch.Tensor, pixels: int) -> torch.Tensor:
    """A per-channel vector laid out for a channel-major flattened map."""
    return v.repeat_interleave(pixels)


def _plain_group_norm(norm: nn.GroupNorm, x: torch.Tensor) -> torch.Tensor:
    return F.group_norm(x, norm.num_groups, None, None, norm.eps)


def _self_attention(a: Attention, x: torch.Tensor, batch: int, tokens: int) -> torch.Tensor:
    """training.unet.Attention (self) on 2-D tokens [B*tokens, C]."""
    if tokens == 1:
        return a.to_out(a.to_v(x))  # softmax over one key is 1
    C = x.shape[1]
    if a.heads == 1:  # no head axis, no transposes
        q, k, v = (m(x).reshape(batch, tokens, C) for m in (a.to_q, a.to_k, a.to_v))
        return a.to_out(F.scaled_dot_product_attention(q, k, v).reshape(batch * tokens, C))
    d = C // a.heads
    q, k, v = (m(x).reshape(batch, tokens, a.heads, d).transpose(1, 2) for m in (a.to_q, a.to_k, a.to_v))
    h = F.scaled_dot_product_attention(q, k, v)
    return a.to_out(h.transpose(1, 2).reshape(batch * tokens, C))


def _blocks(st: SpatialTransformer, h: torch.Tensor, cross: list[torch.Tensor], batch: int, tokens: int):
    for block, c in zip(st.blocks, cross, strict=True):
        h = h + _self_attention(block.attn1, block.norm1(h), batch, tokens)
        h = h + c
        h = h + block.ff(block.norm3(h))
    return h


def _folded_proj_in(st: SpatialTransformer) -> tuple[torch.Tensor, torch.Tensor]:
    """proj_in (1x1 conv) with the GroupNorm's affine folded in: [C_out, C] and bias."""
    w = st.proj_in.weight[:, :, 0, 0]
    return w * st.norm.weight[None], st.proj_in.bias + w @ st.norm.bias


class _FlatResBlock(nn.Module):
    """ResBlock on a flattened map [B, C*s*s]; convs as dense Gemms."""

    def __init__(self, r: ResBlock, size: int):
        super().__init__()
        self.r = r
        px = size * size
        cin, cout = r.conv1.in_channels, r.conv1.out_channels
        with torch.no_grad():
            self.g1, self.b1 = _per_pixel(r.norm1.weight, px), _per_pixel(r.norm1.bias, px)
            self.g2, self.b2 = _per_pixel(r.norm2.weight, px), _per_pixel(r.norm2.bias, px)
            self.w1 = dense_map(lambda x: F.conv2d(x, r.conv1.weight, None, padding=1), (cin, size, size))[0]
            self.w2, self.c2 = dense_map(r.conv2, (cout, size, size))
            self.ws = None
            if not isinstance(r.skip, nn.Identity):
                self.ws, cs = dense_map(r.skip, (cin, size, size))
                self.cs = cs + self.c2  # conv2's bias rides on the skip Gemm

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        """e: the timestep projection plus conv1's bias, per pixel [B, C_out*s*s]."""
        r = self.r
        h = F.silu(_plain_group_norm(r.norm1, x) * self.g1 + self.b1)
        h = torch.addmm(e, h, self.w1.t())
        h = F.silu(_plain_group_norm(r.norm2, h) * self.g2 + self.b2)
        if self.ws is None:
            return x + F.linear(h, self.w2, self.c2)
        return torch.addmm(F.linear(x, self.ws, self.cs), h, self.w2.t())


class _FlatTransformer(nn.Module):
    """SpatialTransformer on a flattened map: proj_in / proj_out as Gemms that also switch between the
    channel-major map and token-major rows."""

    def __init__(self, st: SpatialTransformer, size: int):
        super().__init__()
        self.st, self.size = st, size
        C = st.proj_in.in_channels
        w, b = _folded_proj_in(st)
        with torch.no_grad():
            self.w_in, self.b_in = dense_map(
                lambda x: F.conv2d(x, w[:, :, None, None], b).flatten(2).transpose(1, 2), (C, size, size)
            )
            self.w_out, self.b_out = dense_map(
                lambda tok: st.proj_out(tok.transpose(1, 2).reshape(-1, C, size, size)), (size * size, C)
            )

    def forward(self, x: torch.Tensor, cross: list[torch.Tensor]) -> torch.Tensor:
        st, batch, tokens = self.st, x.shape[0], self.size * self.size
        C = st.proj_in.in_channels
        h = F.linear(_plain_group_norm(st.norm, x), self.w_in, self.b_in)
        if tokens > 1:
            h = h.reshape(batch * tokens, C)
        h = _blocks(st, h, cross, batch, tokens)
        if tokens > 1:
            h = h.reshape(batch, tokens * C)
        return x + F.linear(h, self.w_out, self.b_out)


def _transformer_4d(st: SpatialTransformer, x: torch.Tensor, cross: list[torch.Tensor]) -> torch.Tensor:
    B, C, H, W = x.shape
    tokens = H * W
    w, b = _folded_proj_in(st)
    h = _plain_group_norm(st.norm, x).reshape(B, C, tokens).transpose(1, 2).reshape(B * tokens, C)
    h = _blocks(st, F.linear(h, w, b), cross, B, tokens)
    out = F.linear(h, st.proj_out.weight[:, :, 0, 0], st.proj_out.bias)
    return x + out.reshape(B, tokens, C).transpose(1, 2).reshape(B, C, H, W)


def _res_4d(r: ResBlock, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    h = r.conv1(F.silu(r.norm1(x))) + e
    h = r.conv2(F.silu(r.norm2(h)))
    return (x if isinstance(r.skip, nn.Identity) else r.skip(x)) + h


class ExportUNet(nn.Module):
    """UNet(x_t, t, context) -> predicted noise, the same function as the trained `unet`, for export.
    Takes a float32 UNet on the CPU, as training.export prepares it (the rearranged weights are built
    on the CPU)."""

    def __init__(self, unet: UNet):
        super().__init__()
        p = next(unet.parameters())
        if p.device.type != "cpu" or p.dtype != torch.float32:
            raise ValueError(f"ExportUNet needs a float32 CPU UNet, got {p.dtype} on {p.device}")
        self.unet = u = unet.eval()
        levels = len(u.down)
        self.sizes = [u.cfg.latent_size // 2**level for level in range(levels)]
        up_sizes = self.sizes[::-1]
        # (ResBlock or SpatialTransformer, map size) in forward order
        order: list[tuple[nn.Module, int]] = []
        for level, blocks in enumerate(u.down):
            for b in blocks:
                order += [(b.res, self.sizes[level]), (b.attn, self.sizes[level])]
        order += [(u.mid_res1, self.sizes[-1]), (u.mid_attn, self.sizes[-1]), (u.mid_res2, self.sizes[-1])]
        for i, blocks in enumerate(u.up):
            for b in blocks:
                order += [(b.res, up_sizes[i]), (b.attn, up_sizes[i])]
        self.flat = nn.ModuleDict()
        for k, (m, s) in enumerate(order):
            if is_flat(s):
                self.flat[str(k)] = _FlatResBlock(m, s) if isinstance(m, ResBlock) else _FlatTransformer(m, s)
        self.order = order
        with torch.no_grad():
            self._stack_projections(order)
            self.down_dense = [
                dense_map(ds, (ds.in_channels, s, s))
                if is_flat(s) and not isinstance(ds, nn.Identity)
                else None
                for ds, s in zip(u.downsample, self.sizes, strict=True)
            ]
            self.up_dense = [
                dense_map(
                    lambda z, up=up: up(F.interpolate(z, scale_factor=2.0, mode="nearest")),
                    (up.in_channels, s, s),
                )
                if is_flat(2 * s) and not isinstance(up, nn.Identity)
                else None
                for up, s in zip(u.upsample, up_sizes, strict=True)
            ]
            s0 = self.sizes[0]
            self.flat_io = is_flat(s0)
            if self.flat_io:
                self.w_conv_in, self.b_conv_in = dense_map(u.conv_in, (u.conv_in.in_channels, s0, s0))
                self.g_out = _per_pixel(u.norm_out.weight, s0 * s0)
                self.b_out = _per_pixel(u.norm_out.bias, s0 * s0)
                self.w_conv_out, self.b_conv_out = dense_map(u.conv_out, (u.conv_out.in_channels, s0, s0))

    def _stack_projections(self, order: list[tuple[nn.Module, int]]) -> None:
        # timestep projections: 4-D blocks [B, C] (unsqueezed once), flat ones per pixel with conv1's bias
        w4, b4, w2, b2 = [], [], [], []
        self.emb_split_4d, self.emb_split_flat = [], []
        for m, s in order:
            if not isinstance(m, ResBlock):
                continue
            if is_flat(s):
                w2.append(m.emb.weight.repeat_interleave(s * s, 0))
                b2.append(_per_pixel(m.emb.bias + m.conv1.bias, s * s))
                self.emb_split_flat.append(w2[-1].shape[0])
            else:
                w4.append(m.emb.weight)
                b4.append(m.emb.bias)
                self.emb_split_4d.append(w4[-1].shape[0])
        self.emb_4d = (torch.cat(w4), torch.cat(b4)) if w4 else None
        self.emb_flat = (torch.cat(w2), torch.cat(b2)) if w2 else None
        # cross-attention outputs, one row per token of the block's map (token-major)
        wc, bc = [], []
        self.cross_split = []
        for m, s in order:
            if not isinstance(m, SpatialTransformer):
                continue
            for block in m.blocks:
                a = block.attn2
                w = a.to_out.weight @ a.to_v.weight
                wc.append(w.repeat(s * s, 1))
                bc.append(a.to_out.bias.repeat(s * s))
                self.cross_split.append(wc[-1].shape[0])
        self.cross = (torch.cat(wc), torch.cat(bc))

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        u, B = self.unet, x_t.shape[0]
        emb = F.silu(u.time_embed(timestep_embedding(t, u.cfg.model_channels)))
        e4 = iter(
            F.linear(emb, *self.emb_4d)[:, :, None, None].split(self.emb_split_4d, 1) if self.emb_4d else ()
        )
        e2 = iter(F.linear(emb, *self.emb_flat).split(self.emb_split_flat, 1) if self.emb_flat else ())
        cross = iter(F.linear(context, *self.cross).split(self.cross_split, 1))
        step = iter(range(len(self.order)))

        def block(h: torch.Tensor) -> torch.Tensor:
            k = next(step)
            m, s = self.order[k]
            flat = self.flat[str(k)] if is_flat(s) else None
            if isinstance(m, ResBlock):
                return flat(h, next(e2)) if flat is not None else _res_4d(m, h, next(e4))
            c = [next(cross) for _ in m.blocks]
            if s > 1:
                c = [ci.reshape(B * s * s, -1) for ci in c]
            return flat(h, c) if flat is not None else _transformer_4d(m, h, c)

        h = F.linear(x_t.reshape(B, -1), self.w_conv_in, self.b_conv_in) if self.flat_io else u.conv_in(x_t)
        skips = [h]
        for level, blocks in enumerate(u.down):
            for _ in blocks:
                h = block(block(h))
                skips.append(h)
            if level != len(u.down) - 1:
                h = self._down(level, h)
                skips.append(h)
        h = block(block(block(h)))
        for i, blocks in enumerate(u.up):
            for _ in blocks:
                h = block(block(torch.cat([h, skips.pop()], dim=1)))
            if i != len(u.up) - 1:
                h = self._up(i, h)
        if self.flat_io:
            h = F.silu(_plain_group_norm(u.norm_out, h) * self.g_out + self.b_out)
            return F.linear(h, self.w_conv_out, self.b_conv_out).reshape(x_t.shape)
        return u.conv_out(F.silu(u.norm_out(h)))

    def _down(self, level: int, h: torch.Tensor) -> torch.Tensor:
        if self.down_dense[level] is not None:  # flat -> flat
            return F.linear(h, *self.down_dense[level])
        h = self.unet.downsample[level](h)
        return h.flatten(1) if is_flat(self.sizes[level + 1]) else h

    def _up(self, i: int, h: torch.Tensor) -> torch.Tensor:
        s = self.sizes[::-1][i]
        if self.up_dense[i] is not None:  # flat -> flat
            return F.linear(h, *self.up_dense[i])
        if is_flat(s):  # flat -> 4-D
            h = h.reshape(h.shape[0], -1, s, s)
        return self.unet.upsample[i](F.interpolate(h, scale_factor=2.0, mode="nearest"))


__all__ = ["FLAT_MAX_PIXELS", "ExportUNet", "dense_map", "is_flat"]
