"""BEiT and data2vec-vision: a ViT whose attention adds a learned relative position bias.

Differences from ViT, each switched by the checkpoint's config: a relative position bias table per layer and/or one
shared by all layers (added to the attention scores), absolute position embeddings only when asked for, per-channel
layer scale on both residual branches, a key projection without bias, and no final LayerNorm on the sequence when the
model mean-pools (the encoder-decoder then reads the un-normalised last layer, as the reference's `last_hidden_state`).
Images of another size than the trained one resample the position embeddings and the bias tables, as the reference
always does for BEiT.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checkpoints.weights import WeightTable, linear, norm, param
from ..config import EncoderConfig
from ..family import EncoderFamily
from ..layers import Block, drop_path_rates
from ..validate import Fields
from .vit import VISION_INITS, VIT_FIELDS, resize_positions, vit_style


def config_from_hf(d: dict, where: str | None = None, section: str = "encoder") -> EncoderConfig:
    f = Fields(d, section, where)
    return EncoderConfig(
        family="beit",
        num_prefix_tokens=1,
        absolute_positions=f.flag("use_absolute_position_embeddings", False),
        relative_bias=f.flag("use_relative_position_bias", False),
        shared_relative_bias=f.flag("use_shared_relative_position_bias", False),
        layer_scale=f.number("layer_scale_init_value", 0.1) > 0,
        final_norm=not f.flag("use_mean_pooling", True),
        drop_path=f.fraction("drop_path_rate", 0.1),
        **vit_style(f),
    )


@functools.lru_cache(maxsize=16)
def relative_index(grid: tuple[int, int], device: torch.device) -> Tensor:
    """(N + 1, N + 1) row of the bias table for each (query, key) pair on a (rows, cols) grid after a class token.

    Patch pairs index their offset (d_row, d_col) in a (2 rows - 1, 2 cols - 1) table; the three rows after it hold
    class -> patch, patch -> class and class -> class.
    """
    with torch.inference_mode(False):  # cached: a tensor made under inference mode could not be used in training later
        return _relative_index(grid).to(device)


def _relative_index(grid: tuple[int, int]) -> Tensor:
    rows, cols = grid
    r, c = (t.flatten() for t in torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij"))
    d_row = r[:, None] - r[None, :] + rows - 1  # (N, N), 0 .. 2 rows - 2
    d_col = c[:, None] - c[None, :] + cols - 1
    offsets = (2 * rows - 1) * (2 * cols - 1)
    index = torch.full((rows * cols + 1,) * 2, offsets + 2)  # class -> class
    index[1:, 1:] = d_row * (2 * cols - 1) + d_col
    index[0, 1:] = offsets  # class -> patch
    index[1:, 0] = offsets + 1  # patch -> class
    return index


class RelativePositionBias(nn.Module):
    """A learned bias per head for every (query, key) offset on the patch grid, added to the attention scores."""

    def __init__(self, window: tuple[int, int], heads: int):
        super().__init__()
        self.window = window  # the (rows, cols) patch grid the table was trained for
        self.table = nn.Parameter(torch.zeros((2 * window[0] - 1) * (2 * window[1] - 1) + 3, heads))

    def forward(self, grid: tuple[int, int]) -> Tensor:
        """(rows, cols) patch grid -> (1, heads, N + 1, N + 1) float attention bias."""
        offsets, specials = self.table[:-3], self.table[-3:]  # (offsets, heads), (3, heads)
        size = (2 * grid[0] - 1, 2 * grid[1] - 1)
        # The reference views the trained offsets as (2 cols - 1, 2 rows - 1) before resampling them to `size`; for a
        # square grid that is the table's own layout. Matched as is, so non-square grids agree with it too.
        stored = (2 * self.window[1] - 1, 2 * self.window[0] - 1)
        if stored != size:
            image = offsets.reshape(1, *stored, -1).permute(0, 3, 1, 2)  # (1, heads, *stored)
            image = F.interpolate(image, size=size, mode="bilinear", align_corners=False)
            offsets = image.permute(0, 2, 3, 1).reshape(size[0] * size[1], -1)
        table = torch.cat([offsets, specials])
        bias = table[relative_index(grid, table.device)]  # (N + 1, N + 1, heads)
        return bias.permute(2, 0, 1).unsqueeze(0)


class BeitEncoder(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.cfg = cfg
        c, heads = cfg.hidden_size, cfg.num_heads
        self.patch = nn.Conv2d(cfg.num_channels, c, kernel_size=cfg.patch_size, stride=cfg.patch_size)
        self.cls = nn.Parameter(torch.zeros(1, 1, c))
        self.pos = nn.Parameter(torch.zeros(1, 1 + cfg.num_patches, c)) if cfg.absolute_positions else None
        self.shared_bias = RelativePositionBias(cfg.grid, heads) if cfg.shared_relative_bias else None
        self.layer_bias = (
            nn.ModuleList(RelativePositionBias(cfg.grid, heads) for _ in range(cfg.num_layers))
            if cfg.relative_bias
            else None
        )
        self.blocks = nn.ModuleList(
            Block(
                c,
                heads,
                cfg.intermediate_size,
                cfg.activation,
                cfg.layer_norm_eps,
                layer_scale=cfg.layer_scale,
                dropout=cfg.dropout,
                attn_dropout=cfg.attn_dropout,
                drop_path=rate,
            )
            for rate in drop_path_rates(cfg.drop_path, cfg.num_layers)
        )
        self.norm = nn.LayerNorm(c, eps=cfg.layer_norm_eps) if cfg.final_norm else nn.Identity()

    def forward_features(self, pixels: Tensor) -> Tensor:
        """(B, 3, H, W) -> (B, 1 + patches, C)"""
        x = self.patch(pixels.to(self.patch.weight.dtype))  # (B, C, rows, cols)
        grid = (x.shape[-2], x.shape[-1])
        x = x.flatten(2).transpose(1, 2)  # (B, N, C)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1)  # (B, 1 + N, C)
        if self.pos is not None:
            x = x + self.positions(grid)
        shared = self.shared_bias(grid) if self.shared_bias is not None else None  # (1, heads, 1 + N, 1 + N)
        for i, block in enumerate(self.blocks):
            bias = shared
            if self.layer_bias is not None:
                own = self.layer_bias[i](grid)
                bias = own if shared is None else own + shared
            x = block(x, bias)
        return self.norm(x)

    def positions(self, grid: tuple[int, int]) -> Tensor:
        """Absolute position embeddings for a (rows, cols) grid (resampled as ViT's are)."""
        return resize_positions(self.pos, 1, self.cfg.grid, grid)


def weight_table(cfg: EncoderConfig) -> WeightTable:
    """BeitModel / Data2VecVisionModel names (as inside a VisionEncoderDecoder under `encoder.`)."""
    layer = "encoder.layer.{i}."
    attn = layer + "attention.attention."
    q, k, v = attn + "query", attn + "key", attn + "value"
    rules = [
        *param("cls", "embeddings.cls_token"),
        *linear("patch", "embeddings.patch_embeddings.projection"),
        *norm("blocks.{i}.ln_self", layer + "layernorm_before"),
        *param("blocks.{i}.self_attn.qkv.weight", f"{q}.weight", f"{k}.weight", f"{v}.weight"),
        # The key projection has no bias: its third of the fused bias stays zero and is never written back.
        *param("blocks.{i}.self_attn.qkv.bias", f"{q}.bias", f"{k}.bias", f"{v}.bias", zero=(f"{k}.bias",)),
        *linear("blocks.{i}.self_attn.out", layer + "attention.output.dense"),
        *norm("blocks.{i}.ln_mlp", layer + "layernorm_after"),
        *linear("blocks.{i}.mlp.fc1", layer + "intermediate.dense"),
        *linear("blocks.{i}.mlp.fc2", layer + "output.dense"),
    ]
    if cfg.absolute_positions:
        rules += param("pos", "embeddings.position_embeddings")
    if cfg.shared_relative_bias:
        rules += param("shared_bias.table", "encoder.relative_position_bias.relative_position_bias_table")
    if cfg.relative_bias:
        rules += param("layer_bias.{i}.table", attn + "relative_position_bias.relative_position_bias_table")
    if cfg.layer_scale:
        rules += param("blocks.{i}.ls_self.gamma", layer + "lambda_1")
        rules += param("blocks.{i}.ls_mlp.gamma", layer + "lambda_2")
    if cfg.final_norm:
        rules += norm("norm", "layernorm")
    ignore = [
        r"embeddings\.mask_token",  # masked image modelling only
        r"pooler\.layernorm\.(weight|bias)",  # the mean-pooling head; the decoder reads the sequence
        r".*relative_position_index",  # a buffer older checkpoints saved; ved recomputes it
    ]
    return WeightTable(rules, ignore=ignore)


def reference_only(cfg: EncoderConfig, pooler: bool = True) -> dict[str, tuple[int, ...]]:
    """Tensors the reference's BeitModel has but ved does not use: the mask token and the mean-pooling LayerNorm,
    when the config asks for them (and the model has a pooler: Data2VecVisionModel is built without one)."""
    c = cfg.hidden_size
    out = {"embeddings.mask_token": (1, 1, c)} if cfg.hf.get("use_mask_token", False) else {}
    if pooler and cfg.hf.get("use_mean_pooling", True):
        out.update({"pooler.layernorm.weight": (c,), "pooler.layernorm.bias": (c,)})
    return out


_BEIT = dict(
    read=config_from_hf,
    weights=weight_table,
    module=BeitEncoder,
    overridable=VIT_FIELDS | {"use_absolute_position_embeddings", "use_relative_position_bias",
                              "use_shared_relative_position_bias", "layer_scale_init_value", "use_mean_pooling",
                              "drop_path_rate"},
    inits=(*VISION_INITS, (r".*\.lambda_[12]", "layer_scale")),
)  # fmt: skip
RECORDS = (
    EncoderFamily(model_type="beit", **_BEIT, prefix="beit.", reference_only=reference_only),
    EncoderFamily(
        model_type="data2vec-vision",
        **_BEIT,
        prefix="data2vec_vision.",
        reference_only=functools.partial(reference_only, pooler=False),
    ),
)
