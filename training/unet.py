"""The paper's tiny denoising UNet on the 1x4x4 latent, conditioned on a 32-value context.

LDM's `UNetModel` (openaimodel.py) shrunk: conv in; per level [ResNet block (+ timestep embedding) ->
spatial transformer (self-attention, cross-attention on the context, GEGLU feed-forward)] with a
downsampling conv between levels, so the `paper` config goes 4x4 -> 2x2 -> 1x1 and the middle block
works on a single 64-channel code; the up path mirrors it with one more block per level, each fed the
matching down-path activation through a skip connection (channel concat). Predicts epsilon.

Export notes: no Python branches on tensor values, attention is F.scaled_dot_product_attention with
static head reshapes, the timestep embedding is computed from the int64 timestep inside the graph.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from training.vae import check_group_norm, count_parameters, group_norm


@dataclass
class UNetConfig:
    latent_channels: int = 1
    latent_size: int = 4
    context_dim: int = 32  # 16 conditioning-latent values + 16 relative-pose values
    model_channels: int = 16
    channel_mult: tuple[int, ...] = (1, 2, 4)  # len - 1 downsamplings: 4x4 -> 2x2 -> 1x1 at 64 channels
    num_res_blocks: int = 1  # per down level; up levels use num_res_blocks + 1 (LDM)
    head_dim: int = 16  # heads = channels // head_dim (1, 2, 4 heads in the paper config)
    transformer_depth: int = 1
    ff_mult: int = 4
    norm_groups: int = 8
    dropout: float = 0.0

    def __post_init__(self) -> None:
        self.channel_mult = tuple(self.channel_mult)  # YAML gives lists
        factor = 2 ** (len(self.channel_mult) - 1)
        if self.latent_size % factor:
            raise ValueError(
                f"latent_size {self.latent_size} is not divisible by {factor} "
                f"(the {len(self.channel_mult) - 1} downsamplings of channel_mult {self.channel_mult})"
            )
        check_group_norm(self.model_channels, self.channel_mult, self.norm_groups)
        check_group_norm(self.model_channels, (1,), self.norm_groups)

    @property
    def time_embed_dim(self) -> int:
        return 4 * self.model_channels

    @classmethod
    def paper(cls) -> UNetConfig:
        return cls()

    @classmethod
    def tiny(cls) -> UNetConfig:
        return cls(model_channels=8, channel_mult=(1, 1, 1), head_dim=8, ff_mult=1, norm_groups=2)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding [B, dim] of integer timesteps [B] (DDPM / LDM convention: cos then sin)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.to(torch.float32)[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class ResBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, groups: int, dropout: float = 0.0):
        super().__init__()
        self.norm1 = group_norm(in_ch, groups)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, out_ch)
        self.norm2 = group_norm(out_ch, groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(F.silu(emb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class Attention(nn.Module):
    """Multi-head attention; self-attention when context is None, else cross-attention on the context."""

    def __init__(self, dim: int, heads: int, context_dim: int | None = None):
        super().__init__()
        self.heads = heads
        kv_dim = context_dim or dim
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(kv_dim, dim, bias=False)
        self.to_v = nn.Linear(kv_dim, dim, bias=False)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        B, N, D = x.shape
        ctx = x if context is None else context
        q, k, v = self.to_q(x), self.to_k(ctx), self.to_v(ctx)
        q, k, v = (a.reshape(B, -1, self.heads, D // self.heads).transpose(1, 2) for a in (q, k, v))
        h = F.scaled_dot_product_attention(q, k, v)
        return self.to_out(h.transpose(1, 2).reshape(B, N, D))


class GEGLU(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.proj = nn.Linear(dim, 2 * hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, gate = self.proj(x).chunk(2, dim=-1)
        return h * F.gelu(gate)


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, context_dim: int, ff_mult: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = Attention(dim, heads, context_dim)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = nn.Sequential(GEGLU(dim, ff_mult * dim), nn.Linear(ff_mult * dim, dim))

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        x = x + self.attn1(self.norm1(x))
        x = x + self.attn2(self.norm2(x), context)
        return x + self.ff(self.norm3(x))


class SpatialTransformer(nn.Module):
    """[B,C,H,W] -> tokens (H*W of them) -> transformer blocks attending to the context -> [B,C,H,W]."""

    def __init__(self, ch: int, cfg: UNetConfig):
        super().__init__()
        self.norm = group_norm(ch, cfg.norm_groups)
        self.proj_in = nn.Conv2d(ch, ch, 1)
        heads = max(1, ch // cfg.head_dim)
        self.blocks = nn.ModuleList(
            TransformerBlock(ch, heads, cfg.context_dim, cfg.ff_mult) for _ in range(cfg.transformer_depth)
        )
        self.proj_out = nn.Conv2d(ch, ch, 1)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        h = self.proj_in(self.norm(x)).flatten(2).transpose(1, 2)  # [B, HW, C]
        for block in self.blocks:
            h = block(h, context)
        return x + self.proj_out(h.transpose(1, 2).reshape(B, C, H, W))


class ResAttnBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, cfg: UNetConfig):
        super().__init__()
        self.res = ResBlock(in_ch, out_ch, cfg.time_embed_dim, cfg.norm_groups, cfg.dropout)
        self.attn = SpatialTransformer(out_ch, cfg)

    def forward(self, x: torch.Tensor, emb: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return self.attn(self.res(x, emb), context)


class UNet(nn.Module):
    def __init__(self, cfg: UNetConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or UNetConfig.paper()
        mc, emb_dim = cfg.model_channels, cfg.time_embed_dim
        self.time_embed = nn.Sequential(nn.Linear(mc, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.conv_in = nn.Conv2d(cfg.latent_channels, mc, 3, padding=1)

        chs = [mc * m for m in cfg.channel_mult]
        skip_chs = [mc]
        ch = mc
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        for level, out_ch in enumerate(chs):
            blocks = nn.ModuleList()
            for _ in range(cfg.num_res_blocks):
                blocks.append(ResAttnBlock(ch, out_ch, cfg))
                ch = out_ch
                skip_chs.append(ch)
            self.down.append(blocks)
            last = level == len(chs) - 1
            self.downsample.append(nn.Identity() if last else nn.Conv2d(ch, ch, 3, stride=2, padding=1))
            if not last:
                skip_chs.append(ch)

        self.mid_res1 = ResBlock(ch, ch, emb_dim, cfg.norm_groups, cfg.dropout)
        self.mid_attn = SpatialTransformer(ch, cfg)
        self.mid_res2 = ResBlock(ch, ch, emb_dim, cfg.norm_groups, cfg.dropout)

        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for level in reversed(range(len(chs))):
            blocks = nn.ModuleList()
            for _ in range(cfg.num_res_blocks + 1):
                blocks.append(ResAttnBlock(ch + skip_chs.pop(), chs[level], cfg))
                ch = chs[level]
            self.up.append(blocks)
            self.upsample.append(nn.Conv2d(ch, ch, 3, padding=1) if level != 0 else nn.Identity())

        self.norm_out = group_norm(ch, cfg.norm_groups)
        self.conv_out = nn.Conv2d(ch, cfg.latent_channels, 3, padding=1)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """x_t [B,C,h,w], t int64 [B] in [0, T), context [B, context_dim] -> predicted noise [B,C,h,w]."""
        emb = self.time_embed(timestep_embedding(t, self.cfg.model_channels))
        ctx = context[:, None, :]  # one context token
        h = self.conv_in(x_t)
        skips = [h]
        for level, blocks in enumerate(self.down):
            for block in blocks:
                h = block(h, emb, ctx)
                skips.append(h)
            if level != len(self.down) - 1:
                h = self.downsample[level](h)
                skips.append(h)
        h = self.mid_res2(self.mid_attn(self.mid_res1(h, emb), ctx), emb)
        for level, blocks in enumerate(self.up):
            for block in blocks:
                h = block(torch.cat([h, skips.pop()], dim=1), emb, ctx)
            if level != len(self.up) - 1:
                h = self.upsample[level](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h)))


__all__ = ["UNet", "UNetConfig", "count_parameters", "timestep_embedding"]
