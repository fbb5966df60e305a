"""Swin and Donut-Swin: window attention over a patch grid that halves (and doubles its width) stage by stage.

Pixels are cut into patches (zero-padded at the bottom/right to a patch multiple) and normalised; each stage runs
blocks of self-attention inside non-overlapping windows, every second block with the windows shifted by half a window
(a cyclic roll plus a mask that keeps the wrapped-around regions apart), a learned relative position bias per block,
and ends by merging 2x2 neighbours into one token of twice the width. The output is the last stage's tokens.

Swin ends with a LayerNorm; Donut-Swin (Donut, Nougat) returns the last stage as is. As in the reference, a stage
whose feature map is only one window high or wide is not shifted, a map that is not a window multiple is padded with
zeros *after* the block's first LayerNorm (padded tokens enter attention as zeros), and images of any size are taken.
A map smaller than the window is refused: the reference shrinks the window there but not its bias table, and fails.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checkpoints.weights import Rule, WeightTable, linear, norm, param
from ..config import EncoderConfig
from ..errors import ModelError
from ..family import Derived, EncoderFamily
from ..layers import MLP, DropPath, SelfAttention, drop_path_rates, merge_heads, split_heads
from ..validate import ConfigFieldError, Fields, show
from .vit import VISION_INITS, resize_positions

SHIFT_MASK = -100.0  # the reference's score offset between tokens from different regions of a shifted window
PATCH_NORM_EPS = 1e-5  # the embedding and patch-merging LayerNorms ignore layer_norm_eps in the reference


@dataclass(frozen=True)
class SwinSettings:
    """The Swin-only part of the config (the rest lives in EncoderConfig)."""

    embed_dim: int = 96  # token width of the first stage; each later stage doubles it
    depths: tuple[int, ...] = (2, 2, 6, 2)  # blocks per stage
    heads: tuple[int, ...] = (3, 6, 12, 24)  # attention heads per stage
    window: int = 7  # window side in tokens; the bias tables are trained for it
    mlp_ratio: float = 4.0  # MLP width / token width
    eager: bool = False  # attention as explicit scores -> softmax -> values (Donut-Swin), else fused (SDPA)

    @classmethod
    def from_hf(cls, d: dict, where: str | None = None, section: str = "encoder") -> SwinSettings:
        f = Fields(d, section, where)
        window = d.get("window_size", 7)
        if isinstance(window, (list, tuple)) and window and len(set(map(repr, window))) == 1:
            window = window[0]  # a square window given as [7, 7]
        elif isinstance(window, (list, tuple)):
            raise ModelError(f"non-square Swin windows are not supported ({f.name('window_size')} {show(window)})",
                             where)  # fmt: skip
        settings = cls(
            embed_dim=f.count("embed_dim", 96),
            depths=f.counts("depths", (2, 2, 6, 2), minimum=0),
            heads=f.counts("num_heads", (3, 6, 12, 24)),
            window=Fields({"window_size": window}, section, where).count("window_size", 7),
            mlp_ratio=f.number("mlp_ratio", 4.0, positive=True),
            eager=d.get("model_type") == "donut-swin",
        )
        if len(settings.depths) != len(settings.heads):
            raise ConfigFieldError(
                f"{f.name('depths')} has {len(settings.depths)} stages but {f.name('num_heads')} has "
                f"{len(settings.heads)}",
                where,
                "num_heads",
                section,
                also=("depths",),
            )
        for stage, heads in enumerate(settings.heads):
            width = settings.width(stage)
            if width % heads:
                raise ConfigFieldError(f"stage {stage + 1}'s width {width} ({f.name('embed_dim')} x {2**stage}) is "
                                       f"not divisible by its {heads} heads ({f.name('num_heads')})", where,
                                       "num_heads", section, also=("embed_dim",))  # fmt: skip
            if settings.mlp_width(stage) < 1:
                raise f.fail("mlp_ratio", "large enough for an MLP of at least one unit", settings.mlp_ratio)
        return settings

    def width(self, stage: int) -> int:
        return self.embed_dim * 2**stage

    def mlp_width(self, stage: int) -> int:
        return int(self.mlp_ratio * self.width(stage))


def config_from_hf(d: dict, where: str | None = None, section: str = "encoder") -> EncoderConfig:
    f = Fields(d, section, where)
    s = SwinSettings.from_hf(d, where, section)
    donut = d.get("model_type") == "donut-swin"
    absolute = f.flag("use_absolute_embeddings", False)
    if donut and absolute:
        # DonutSwinModel stores one row more than there are patches and fails to add them; no checkpoint uses them.
        raise ModelError("donut-swin with use_absolute_embeddings is not supported (the reference cannot run it)",
                         where)  # fmt: skip
    image, patch = f.pair("image_size", 224), f.pair("patch_size", 4)
    if patch[0] > image[0] or patch[1] > image[1]:
        raise ConfigFieldError(f"{f.name('patch_size')} {list(patch)} is larger than {f.name('image_size')} "
                               f"{list(image)}", where, "patch_size", section, also=("image_size",))  # fmt: skip
    last = len(s.depths) - 1
    return EncoderConfig(
        family="swin",
        hidden_size=s.width(last),
        num_layers=sum(s.depths),
        num_heads=s.heads[-1],
        intermediate_size=s.mlp_width(last),
        activation=f.activation("hidden_act", "gelu"),
        layer_norm_eps=f.eps("layer_norm_eps", 1e-5),
        image_size=image,
        patch_size=patch,
        num_channels=f.count("num_channels", 3),
        qkv_bias=f.flag("qkv_bias", True),
        num_prefix_tokens=0,
        absolute_positions=absolute,
        final_norm=not donut,
        drop_path=f.fraction("drop_path_rate", 0.1),
        hf=d,
    )


@dataclass(frozen=True)
class Windows:
    """How one stage cuts its (H, W) feature map into windows; shared by the stage's blocks."""

    size: int  # window side
    shift: int  # cyclic shift of every second block (0: none)
    pad: tuple[int, int]  # zero rows added at the bottom, zero columns at the right
    index: Tensor  # (T, T) row of the bias table for each (query, key) pair, T = size * size
    mask: Tensor | None  # (windows, T, T): 0 within a region, SHIFT_MASK across regions; None without shift

    @classmethod
    def plan(cls, height: int, width: int, window: int, dtype: torch.dtype, device) -> Windows:
        """Windows for an (H, W) map: no shift when one side is a single window; ModelError when it is smaller."""
        if min(height, width) < window:
            raise ModelError(
                f"the image gives a {height}x{width} Swin feature map, smaller than its {window}x{window} window; "
                "use a larger image"
            )
        shift = window // 2 if min(height, width) > window else 0
        pad = ((window - height % window) % window, (window - width % window) % window)
        mask = shift_mask(height + pad[0], width + pad[1], window, shift, dtype, device) if shift else None
        return cls(window, shift, pad, relative_index(window, device), mask)


def relative_index(window: int, device) -> Tensor:
    """(T, T): query i, key j -> (d_row + w - 1) * (2w - 1) + (d_col + w - 1), the row of a (2w-1)^2 table."""
    r, c = (t.flatten() for t in torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij"))
    d_row = r[:, None] - r[None, :] + window - 1
    d_col = c[:, None] - c[None, :] + window - 1
    return (d_row * (2 * window - 1) + d_col).to(device)


def shift_mask(height: int, width: int, window: int, shift: int, dtype: torch.dtype, device) -> Tensor:
    """(windows, T, T) additive mask for a map rolled up-left by `shift`: tokens that were not neighbours stay apart.

    Along each axis the rolled map has three regions, [0, n - window), [n - window, n - shift), [n - shift, n); two
    tokens of one window may attend to each other only when they lie in the same region on both axes.
    """

    def regions(n: int) -> Tensor:
        i = torch.arange(n, device=device)
        return (i >= n - window).long() + (i >= n - shift).long()

    label = regions(height)[:, None] * 3 + regions(width)[None, :]  # (H, W)
    label = partition(label[None, :, :, None], window).squeeze(-1)  # (windows, T)
    same = label[:, :, None] == label[:, None, :]
    return torch.zeros(same.shape, dtype=dtype, device=device).masked_fill(~same, SHIFT_MASK)


def partition(x: Tensor, window: int) -> Tensor:
    """(B, H, W, C) -> (B * windows, T, C), windows row by row within each image."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c).transpose(2, 3)
    return x.reshape(-1, window * window, c)


def unpartition(windows: Tensor, window: int, height: int, width: int) -> Tensor:
    """(B * windows, T, C) -> (B, H, W, C), the inverse of `partition`."""
    c = windows.shape[-1]
    x = windows.view(-1, height // window, width // window, window, window, c).transpose(2, 3)
    return x.reshape(-1, height, width, c)


class EagerAttention(SelfAttention):
    """SelfAttention with the scores written out, in the order DonutSwinModel computes them.

    Donut-Swin's output is not normalised and grows large, so the few ulps by which a fused kernel differs would reach
    the decoder; computed this way ved rounds as the reference does. Same parameters as SelfAttention.
    """

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:  # encoders keep no cache
        q, k, v = (split_heads(t, self.heads) for t in self.qkv(x).chunk(3, dim=-1))  # (B, H, T, D) each
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(q.shape[-1])  # (B, H, T, T)
        if mask is not None:
            scores = scores + mask
        return self.out(merge_heads(torch.matmul(scores.softmax(dim=-1), v)))  # (B, T, C)


class SwinBlock(nn.Module):
    """Pre-norm window attention with a relative position bias, then a pre-norm MLP; `shifted` rolls the windows."""

    def __init__(self, cfg: EncoderConfig, s: SwinSettings, stage: int, shifted: bool, drop_path: float = 0.0):
        super().__init__()
        dim, heads = s.width(stage), s.heads[stage]
        self.shifted = shifted
        self.drop_path = DropPath(drop_path)  # stochastic depth on both residual branches, in training
        self.ln_self = nn.LayerNorm(dim, eps=cfg.layer_norm_eps)
        self.self_attn = (EagerAttention if s.eager else SelfAttention)(dim, heads, qkv_bias=cfg.qkv_bias)
        self.bias_table = nn.Parameter(torch.zeros((2 * s.window - 1) ** 2, heads))  # (offsets, heads)
        self.ln_mlp = nn.LayerNorm(dim, eps=cfg.layer_norm_eps)
        self.mlp = MLP(dim, s.mlp_width(stage), cfg.activation)

    def forward(self, x: Tensor, grid: tuple[int, int], win: Windows) -> Tensor:
        """(B, H*W, C) -> (B, H*W, C)"""
        b, n, c = x.shape
        h, w = grid
        shift = win.shift if self.shifted else 0
        y = self.ln_self(x).view(b, h, w, c)
        y = F.pad(y, (0, 0, 0, win.pad[1], 0, win.pad[0]))  # (B, Hp, Wp, C), zeros after the norm
        hp, wp = y.shape[1:3]
        if shift:
            y = torch.roll(y, shifts=(-shift, -shift), dims=(1, 2))
        y = self.self_attn(partition(y, win.size), self.attention_mask(win, shift, b))  # (B * windows, T, C)
        y = unpartition(y, win.size, hp, wp)
        if shift:
            y = torch.roll(y, shifts=(shift, shift), dims=(1, 2))
        x = x + self.drop_path(y[:, :h, :w].reshape(b, n, c))
        return x + self.drop_path(self.mlp(self.ln_mlp(x)))

    def attention_mask(self, win: Windows, shift: int, batch: int) -> Tensor:
        """Float mask added to the scores: (1, heads, T, T) bias, or (B * windows, heads, T, T) with the shift mask."""
        t = win.size * win.size
        bias = self.bias_table[win.index.view(-1)].view(t, t, -1).permute(2, 0, 1).unsqueeze(0)  # (1, heads, T, T)
        if not shift:
            return bias
        mask = bias + win.mask.to(bias.dtype)[:, None]  # (windows, heads, T, T)
        return mask.expand(batch, *mask.shape).reshape(-1, *mask.shape[1:])


class PatchMerging(nn.Module):
    """2x2 neighbouring tokens -> one token of twice the width (odd maps padded with zeros at the bottom/right)."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim, eps=PATCH_NORM_EPS)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: Tensor, grid: tuple[int, int]) -> Tensor:
        """(B, H*W, C) -> (B, ceil(H/2) * ceil(W/2), 2C)"""
        b, _, c = x.shape
        h, w = grid
        x = F.pad(x.view(b, h, w, c), (0, 0, 0, w % 2, 0, h % 2))
        # Channel order of the reference: (even row, even col), (odd, even), (even, odd), (odd, odd).
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x.view(b, -1, 4 * c)))


class SwinStage(nn.Module):
    def __init__(self, cfg: EncoderConfig, s: SwinSettings, stage: int):
        super().__init__()
        self.window = s.window
        first = sum(s.depths[:stage])
        rates = drop_path_rates(cfg.drop_path, sum(s.depths))[first : first + s.depths[stage]]
        self.blocks = nn.ModuleList(
            SwinBlock(cfg, s, stage, shifted=i % 2 == 1, drop_path=rate) for i, rate in enumerate(rates)
        )
        self.merge = PatchMerging(s.width(stage)) if stage < len(s.depths) - 1 else None

    def forward(self, x: Tensor, grid: tuple[int, int]) -> tuple[Tensor, tuple[int, int]]:
        """(B, H*W, C) on an (H, W) grid -> the next stage's tokens and grid."""
        win = Windows.plan(*grid, self.window, x.dtype, x.device)
        for block in self.blocks:
            x = block(x, grid, win)
        if self.merge is None:
            return x, grid
        return self.merge(x, grid), ((grid[0] + 1) // 2, (grid[1] + 1) // 2)


class SwinEncoder(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.cfg = cfg
        # Like ViT, absolute positions make the reference refuse other sizes unless asked to interpolate them.
        self.needs_interpolation_flag = cfg.absolute_positions
        s = SwinSettings.from_hf(cfg.hf)
        self.patch = nn.Conv2d(cfg.num_channels, s.embed_dim, kernel_size=cfg.patch_size, stride=cfg.patch_size)
        self.embed_norm = nn.LayerNorm(s.embed_dim, eps=PATCH_NORM_EPS)
        self.pos = nn.Parameter(torch.zeros(1, cfg.num_patches, s.embed_dim)) if cfg.absolute_positions else None
        self.stages = nn.ModuleList(SwinStage(cfg, s, i) for i in range(len(s.depths)))
        self.norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps) if cfg.final_norm else None

    def forward_features(self, pixels: Tensor) -> Tensor:
        """(B, 3, H, W), any size -> (B, N, C) tokens of the last stage; absolute positions resampled if needed."""
        ph, pw = self.cfg.patch_size
        h, w = pixels.shape[-2:]
        pixels = F.pad(pixels.to(self.patch.weight.dtype), (0, (pw - w % pw) % pw, 0, (ph - h % ph) % ph))
        x = self.patch(pixels)  # (B, C, rows, cols)
        grid = (x.shape[-2], x.shape[-1])
        x = self.embed_norm(x.flatten(2).transpose(1, 2))  # (B, N, C)
        if self.pos is not None:
            x = x + resize_positions(self.pos, 0, self.cfg.grid, grid)
        for stage in self.stages:
            x, grid = stage(x, grid)
        return self.norm(x) if self.norm is not None else x


def weight_table(cfg: EncoderConfig) -> WeightTable:
    """SwinModel / DonutSwinModel names (as inside a VisionEncoderDecoder under `encoder.`), every stage spelled out."""
    s = SwinSettings.from_hf(cfg.hf)
    rules: list[Rule] = [
        *linear("patch", "embeddings.patch_embeddings.projection"),
        *norm("embed_norm", "embeddings.norm"),
    ]
    if cfg.absolute_positions:
        rules += param("pos", "embeddings.position_embeddings")
    for i, depth in enumerate(s.depths):
        for j in range(depth):
            ved, hf = f"stages.{i}.blocks.{j}.", f"encoder.layers.{i}.blocks.{j}."
            attn = hf + "attention.self."
            rules += [
                *norm(ved + "ln_self", hf + "layernorm_before"),
                *linear(ved + "self_attn.qkv", attn + "query", attn + "key", attn + "value", bias=cfg.qkv_bias),
                *linear(ved + "self_attn.out", hf + "attention.output.dense"),
                *param(ved + "bias_table", attn + "relative_position_bias_table"),
                *norm(ved + "ln_mlp", hf + "layernorm_after"),
                *linear(ved + "mlp.fc1", hf + "intermediate.dense"),
                *linear(ved + "mlp.fc2", hf + "output.dense"),
            ]
        if i < len(s.depths) - 1:
            rules += norm(f"stages.{i}.merge.norm", f"encoder.layers.{i}.downsample.norm")
            rules += linear(f"stages.{i}.merge.reduction", f"encoder.layers.{i}.downsample.reduction", bias=False)
    if cfg.final_norm:
        rules += norm("norm", "layernorm")
    # Donut-Swin (and Swin before transformers 5) saves each block's relative position index, a derived buffer.
    ignore = [r"encoder\.layers\.\d+\.blocks\.\d+\.attention\.self\.relative_position_index", r"embeddings\.mask_token"]
    return WeightTable(rules, ignore=ignore)


def reference_only(cfg: EncoderConfig) -> dict[str, tuple[int, ...]]:
    """Tensors the reference's model saves and expects back that ved computes itself: DonutSwinModel keeps each
    block's relative position index as a saved buffer (SwinModel's is not saved)."""
    s = SwinSettings.from_hf(cfg.hf)
    t = s.window * s.window
    return {
        f"encoder.layers.{i}.blocks.{j}.attention.self.relative_position_index": (t, t)
        for i, depth in enumerate(s.depths)
        for j in range(depth)
    }


def _sizes(config: dict) -> None:
    """Swin stores its output width and stage count besides the fields they follow from; transformers trusts them."""
    depths = config.get("depths", [2, 2, 6, 2])
    config["num_layers"] = len(depths)
    config["hidden_size"] = int(config.get("embed_dim", 96) * 2 ** (len(depths) - 1))


_SWIN = dict(
    read=config_from_hf,
    weights=weight_table,
    module=SwinEncoder,
    aliases={"num_attention_heads": "num_heads", "num_hidden_layers": "num_layers"},
    overridable=frozenset({"embed_dim", "depths", "num_heads", "window_size", "mlp_ratio", "hidden_act",
                           "layer_norm_eps", "image_size", "patch_size", "num_channels", "qkv_bias",
                           "use_absolute_embeddings", "drop_path_rate", "hidden_dropout_prob",
                           "attention_probs_dropout_prob"}),
    derived=Derived(("hidden_size", "num_layers"), "embed_dim and depths", _sizes),
    inits=VISION_INITS,
)  # fmt: skip
RECORDS = (
    EncoderFamily(model_type="swin", **_SWIN, prefix="swin."),
    EncoderFamily(model_type="donut-swin", **_SWIN, prefix="donut.", reference_only=reference_only,
                  image_processor="DonutImageProcessor"),
)  # fmt: skip
