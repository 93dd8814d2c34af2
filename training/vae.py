"""The paper's tiny VAE: 32x32x3 image <-> 1x4x4 diagonal-Gaussian latent (LDM autoencoder, shrunk).

Structure (Rombach et al.'s `Encoder`/`Decoder`, as the paper describes it):
encoder = conv in -> per level [ResNet blocks, downsample] -> mid [ResNet, self-attention, ResNet]
-> GroupNorm + SiLU + conv to 2 * latent_channels (mean, log-variance); the decoder mirrors it with
upsampling. The `paper` config (base 16 channels, multipliers 1-2-2-4, one ResNet block per level,
LDM's 1x1 quant convs) has exactly the paper's 634,941 parameters; see docs/models.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# log-variance is clamped as in LDM's DiagonalGaussianDistribution, so exp() never overflows early in training
LOGVAR_MIN, LOGVAR_MAX = -30.0, 20.0
# Colour conditioning (VAEConfig.colour_cond): the summary is the object pixels' RGB mean and std. A pixel
# is background when every channel is at least this bright (in [-1, 1]; 245/255 as in training.metrics:
# the renders' background is pure white and their brightest object face peaks near 220/255).
COLOUR_VALUES = 6
BACKGROUND_MIN = 245 / 127.5 - 1.0


@dataclass
class VAEConfig:
    image_size: int = 32
    in_channels: int = 3
    base_channels: int = 16
    channel_mult: tuple[int, ...] = (1, 2, 2, 4)  # one level per entry; len - 1 downsamplings (32 -> 4)
    num_res_blocks: int = 1  # per encoder level
    decoder_res_blocks: int = 1  # per decoder level (LDM uses num_res_blocks + 1; the paper's count says 1)
    latent_channels: int = 1
    norm_groups: int = 8
    mid_attention: bool = True
    quant_conv: bool = True  # LDM's 1x1 convs on the moments / the latent (8 parameters at 1x4x4)
    dropout: float = 0.0
    # Beyond the paper: the decoder also gets the colour summary (colour_summary) of an image of the object
    # (in training the image itself or another view, vae_train.colour_from; at inference the conditioning
    # view), so the latent need not carry colour (the paper's cars come out in the dominant silver).
    # False = the paper's decoder.
    colour_cond: bool = False

    def __post_init__(self) -> None:
        self.channel_mult = tuple(self.channel_mult)  # YAML gives lists
        factor = 2 ** (len(self.channel_mult) - 1)
        if self.image_size % factor:
            raise ValueError(
                f"image_size {self.image_size} is not divisible by {factor} "
                f"(the {len(self.channel_mult) - 1} downsamplings of channel_mult {self.channel_mult})"
            )
        check_group_norm(self.base_channels, self.channel_mult, self.norm_groups)

    @property
    def latent_size(self) -> int:
        return self.image_size // 2 ** (len(self.channel_mult) - 1)

    @classmethod
    def paper(cls) -> VAEConfig:
        return cls()

    @classmethod
    def tiny(cls) -> VAEConfig:
        return cls(base_channels=4, channel_mult=(1, 1, 2, 2), norm_groups=2)


def check_group_norm(base: int, mult: tuple[int, ...], groups: int) -> None:
    for ch in (base * m for m in mult):
        if ch % min(groups, ch):
            raise ValueError(f"{ch} channels cannot be split into {groups} GroupNorm groups")


def group_norm(channels: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(groups, channels), channels, eps=1e-6)


class ResnetBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, groups: int, dropout: float = 0.0):
        super().__init__()
        self.norm1 = group_norm(in_ch, groups)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.norm2 = group_norm(out_ch, groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class AttnBlock(nn.Module):
    """Single-head self-attention over the spatial positions (LDM's AttnBlock, 1x1 conv projections)."""

    def __init__(self, ch: int, groups: int):
        super().__init__()
        self.norm = group_norm(ch, groups)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.proj = nn.Conv2d(ch, ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(B, 3, C, H * W).transpose(-1, -2).unbind(1)
        h = F.scaled_dot_product_attention(q, k, v)  # [B, HW, C]
        return x + self.proj(h.transpose(-1, -2).reshape(B, C, H, W))


class Downsample(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class MidBlock(nn.Sequential):
    def __init__(self, ch: int, cfg: VAEConfig):
        super().__init__(
            ResnetBlock(ch, ch, cfg.norm_groups, cfg.dropout),
            AttnBlock(ch, cfg.norm_groups) if cfg.mid_attention else nn.Identity(),
            ResnetBlock(ch, ch, cfg.norm_groups, cfg.dropout),
        )


def colour_summary(x: torch.Tensor) -> torch.Tensor:
    """image [B,3,S,S] in [-1,1] -> [B, 6]: RGB mean and std over the object (non-background) pixels.

    An image with no object pixels gets mean 0 and std ~0 (an empty mask must not divide by zero)."""
    mask = (x < BACKGROUND_MIN).any(dim=1, keepdim=True).to(x.dtype)  # [B,1,S,S]
    count = mask.sum(dim=(2, 3)).clamp(min=1.0)  # [B,1]
    mean = (x * mask).sum(dim=(2, 3)) / count
    var = ((x - mean[:, :, None, None]).square() * mask).sum(dim=(2, 3)) / count
    return torch.cat([mean, torch.sqrt(var + 1e-6)], dim=1)


class Encoder(nn.Module):
    """image [B,3,S,S] in [-1,1] -> [B, 2*latent_channels, s, s] (mean and log-variance stacked)."""

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        chs = [cfg.base_channels * m for m in cfg.channel_mult]
        self.conv_in = nn.Conv2d(cfg.in_channels, chs[0], 3, padding=1)
        blocks: list[nn.Module] = []
        ch = chs[0]
        for level, out_ch in enumerate(chs):
            for _ in range(cfg.num_res_blocks):
                blocks.append(ResnetBlock(ch, out_ch, cfg.norm_groups, cfg.dropout))
                ch = out_ch
            if level != len(chs) - 1:
                blocks.append(Downsample(ch))
        self.down = nn.Sequential(*blocks)
        self.mid = MidBlock(ch, cfg)
        self.norm_out = group_norm(ch, cfg.norm_groups)
        self.conv_out = nn.Conv2d(ch, 2 * cfg.latent_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.down(self.conv_in(x)))
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    """latent [B, latent_channels, s, s] -> image [B,3,S,S] (unbounded; ~[-1,1] after training)."""

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        chs = [cfg.base_channels * m for m in cfg.channel_mult]
        ch = chs[-1]
        self.conv_in = nn.Conv2d(cfg.latent_channels, ch, 3, padding=1)
        self.mid = MidBlock(ch, cfg)
        blocks: list[nn.Module] = []
        for level in reversed(range(len(chs))):
            for _ in range(cfg.decoder_res_blocks):
                blocks.append(ResnetBlock(ch, chs[level], cfg.norm_groups, cfg.dropout))
                ch = chs[level]
            if level != 0:
                blocks.append(Upsample(ch))
        self.up = nn.Sequential(*blocks)
        self.norm_out = group_norm(ch, cfg.norm_groups)
        self.conv_out = nn.Conv2d(ch, cfg.in_channels, 3, padding=1)
        self.colour_in: nn.Linear | None = None
        self.colour_out: nn.Linear | None = None
        if cfg.colour_cond:
            # The colour enters twice: as a bias where the decoder starts (the whole decoder can use it)
            # and as a scale/shift of the last features (where a recolouring is one affine map per
            # channel). Zero-initialised, so training starts from the paper's decoder.
            self.colour_in = nn.Linear(COLOUR_VALUES, chs[-1])
            self.colour_out = nn.Linear(COLOUR_VALUES, 2 * ch)
            for lin in (self.colour_in, self.colour_out):
                nn.init.zeros_(lin.weight)
                nn.init.zeros_(lin.bias)

    def forward(self, z: torch.Tensor, colour: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv_in(z)
        if self.colour_in is not None:
            if colour is None:
                raise ValueError(
                    "this decoder is colour-conditioned (vae.colour_cond): pass a colour summary"
                )
            h = h + self.colour_in(colour)[:, :, None, None]
        h = self.norm_out(self.up(self.mid(h)))
        if self.colour_out is not None:
            scale, shift = self.colour_out(colour)[:, :, None, None].chunk(2, dim=1)
            h = h * (1 + scale) + shift
        return self.conv_out(F.silu(h))


class VAE(nn.Module):
    def __init__(self, cfg: VAEConfig | None = None):
        super().__init__()
        self.cfg = cfg or VAEConfig.paper()
        self.encoder = Encoder(self.cfg)
        self.decoder = Decoder(self.cfg)
        moments, z = 2 * self.cfg.latent_channels, self.cfg.latent_channels
        self.quant_conv = nn.Conv2d(moments, moments, 1) if self.cfg.quant_conv else nn.Identity()
        self.post_quant_conv = nn.Conv2d(z, z, 1) if self.cfg.quant_conv else nn.Identity()

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B,3,S,S] in [-1,1] -> (mean, logvar), each [B, latent_channels, s, s]."""
        mean, logvar = self.quant_conv(self.encoder(x)).chunk(2, dim=1)
        return mean, logvar.clamp(LOGVAR_MIN, LOGVAR_MAX)

    def colour(self, x: torch.Tensor) -> torch.Tensor | None:
        """What the decoder needs besides the latent, from an image of the object: its colour summary
        when the decoder is colour-conditioned, else None."""
        return colour_summary(x) if self.cfg.colour_cond else None

    def decode(self, z: torch.Tensor, colour: torch.Tensor | None = None) -> torch.Tensor:
        """Unscaled latent (+ the colour summary of an image of the object, see `colour`) -> image in ~[-1,1].
        One colour row serves a whole batch of latents."""
        if colour is not None and colour.shape[0] == 1 and z.shape[0] > 1:
            colour = colour.expand(z.shape[0], -1)
        return self.decoder(self.post_quant_conv(z), colour)

    def forward(
        self, x: torch.Tensor, sample: bool = True, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mean, logvar = self.encode(x)
        z = mean
        if sample:
            eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
            z = mean + eps * torch.exp(0.5 * logvar)
        return self.decode(z, self.colour(x)), mean, logvar


class EncodeMean(nn.Module):
    """image -> latent mean (the runtime never samples), and the colour summary when the decoder is
    colour-conditioned: the graph exported as encoder.onnx."""

    def __init__(self, vae: VAE):
        super().__init__()
        self.vae = vae

    def forward(self, image: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        mean = self.vae.encode(image)[0]
        colour = self.vae.colour(image)
        return mean if colour is None else (mean, colour)


class Decode(nn.Module):
    """unscaled latent (+ colour summary) -> image: the graph exported as decoder.onnx."""

    def __init__(self, vae: VAE):
        super().__init__()
        self.vae = vae

    def forward(self, latent: torch.Tensor, colour: torch.Tensor | None = None) -> torch.Tensor:
        return self.vae.decode(latent, colour)


def kl_to_standard_normal(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)) per latent element, [B, C, h, w]."""
    return 0.5 * (mean.square() + logvar.exp() - 1.0 - logvar)


def vae_loss(
    x: torch.Tensor,
    x_hat: torch.Tensor,
    mean: torch.Tensor,
    logvar: torch.Tensor,
    l1_weight: float = 1.0,
    kl_weight: float = 5.0,
    kl_norm: str = "ldm",
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Paper loss: l1_weight * L1 + kl_weight * KL; returns (loss, {"l1", "kl"}).

    The paper gives the weights (1.0, 5.0) but not the reductions. Default `kl_norm="ldm"` follows the
    LDM code the paper shrinks: reconstruction and KL are both *summed per sample* (over 3x32x32 pixel
    values and over the 16 latent values) and averaged over the batch; the whole loss is then divided by
    the pixel values per sample (3072) so it reads as a per-pixel L1 (a constant factor, which Adam
    ignores). Net effect: loss = mean L1 + 5 * sum(KL) / 3072. Why: with a 16-value latent, a KL
    *averaged* per latent element at weight 5 outweighs the mean pixel L1 so much that the posterior
    collapses towards the prior (the latent can buy ~0.3 nats for a 0.1 drop in L1). `kl_norm="mean"`
    (KL averaged over latent elements) is kept for ablations.
    The reported "l1" is the mean absolute pixel error and "kl" the mean KL per latent element (nats).
    """
    l1 = (x - x_hat).abs().mean()
    kl_elem = kl_to_standard_normal(mean, logvar)
    kl = kl_elem.mean()
    if kl_norm == "ldm":
        kl_term = kl_elem.flatten(1).sum(1).mean() / x[0].numel()
    elif kl_norm == "mean":
        kl_term = kl
    else:
        raise ValueError(f"kl_norm must be 'ldm' or 'mean', got {kl_norm!r}")
    return l1_weight * l1 + kl_weight * kl_term, {"l1": l1.detach(), "kl": kl.detach()}


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
