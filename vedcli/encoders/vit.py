"""ViT and DeiT: patches + learned positions + pre-norm blocks. DeiT adds a distillation token after the class token."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checkpoints.weights import WeightTable, linear, norm, param
from ..config import EncoderConfig
from ..errors import ModelError
from ..family import EncoderFamily, SizeKeys, read_sizes
from ..layers import Block
from ..validate import ConfigFieldError, Fields


def vit_style(f: Fields) -> dict:
    """EncoderConfig fields ViT-named configs (ViT, DeiT, BEiT, data2vec-vision) set the same way, checked."""
    sizes = read_sizes(f, dropout=0.0, attn_dropout=0.0)
    image, patch = f.pair("image_size", 224), f.pair("patch_size", 16)
    if patch[0] > image[0] or patch[1] > image[1]:
        raise ConfigFieldError(f"{f.name('patch_size')} {list(patch)} is larger than {f.name('image_size')} "
                               f"{list(image)}", f.where, "patch_size", f.section, also=("image_size",))  # fmt: skip
    return dict(**sizes, image_size=image, patch_size=patch, num_channels=f.count("num_channels", 3), hf=f.d)


def config_from_hf(d: dict, where: str | None = None, section: str = "encoder") -> EncoderConfig:
    f = Fields(d, section, where)
    prefix = 2 if d.get("model_type") == "deit" else 1  # DeiT adds a distillation token
    return EncoderConfig(family="vit", qkv_bias=f.flag("qkv_bias", True), num_prefix_tokens=prefix, **vit_style(f))


class ViTEncoder(nn.Module):
    needs_interpolation_flag = True  # the reference refuses other image sizes without interpolate_pos_encoding

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.cfg = cfg
        c = cfg.hidden_size
        self.patch = nn.Conv2d(cfg.num_channels, c, kernel_size=cfg.patch_size, stride=cfg.patch_size)
        self.prefix = nn.Parameter(torch.zeros(1, cfg.num_prefix_tokens, c))  # [CLS] (+ distillation token)
        self.pos = nn.Parameter(torch.zeros(1, cfg.num_prefix_tokens + cfg.num_patches, c))
        self.blocks = nn.ModuleList(
            Block(
                c,
                cfg.num_heads,
                cfg.intermediate_size,
                cfg.activation,
                cfg.layer_norm_eps,
                qkv_bias=cfg.qkv_bias,
                dropout=cfg.dropout,
                attn_dropout=cfg.attn_dropout,
            )
            for _ in range(cfg.num_layers)
        )
        self.norm = nn.LayerNorm(c, eps=cfg.layer_norm_eps)
        self.drop = nn.Dropout(cfg.dropout)

    def forward_features(self, pixels: Tensor) -> Tensor:
        """(B, 3, H, W) -> (B, prefix + patches, C); other sizes than the trained one interpolate the positions."""
        x = self.patch(pixels.to(self.patch.weight.dtype))  # (B, C, H / p, W / p)
        grid = tuple(x.shape[-2:])
        x = x.flatten(2).transpose(1, 2)  # (B, N, C)
        x = torch.cat([self.prefix.expand(x.shape[0], -1, -1), x], dim=1) + self.positions(grid)  # (B, P + N, C)
        x = self.drop(x)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def positions(self, grid: tuple[int, int]) -> Tensor:
        return resize_positions(self.pos, self.cfg.num_prefix_tokens, self.cfg.grid, grid)


def resize_positions(pos: Tensor, prefix: int, trained: tuple[int, int], grid: tuple[int, int]) -> Tensor:
    """Position embeddings (1, prefix + patches, C) for a (rows, cols) patch grid: the trained square grid resampled
    bicubically, as the reference's `interpolate_pos_encoding` does; the prefix tokens keep theirs."""
    if grid == trained:
        return pos
    if trained[0] != trained[1]:
        raise ModelError(f"cannot resize position embeddings trained for a non-square grid {trained}")
    side = trained[0]
    patches = pos[:, prefix:].reshape(1, side, side, -1).permute(0, 3, 1, 2)  # (1, C, side, side)
    patches = F.interpolate(patches, size=grid, mode="bicubic", align_corners=False)
    return torch.cat([pos[:, :prefix], patches.permute(0, 2, 3, 1).reshape(1, grid[0] * grid[1], -1)], dim=1)


def weight_table(cfg: EncoderConfig) -> WeightTable:
    """ViTModel / DeiTModel names (as inside a VisionEncoderDecoder under `encoder.`)."""
    prefix = ["embeddings.cls_token"] + (["embeddings.distillation_token"] if cfg.num_prefix_tokens == 2 else [])
    layer = "encoder.layer.{i}."
    attn = layer + "attention.attention."
    rules = [
        *param("prefix", *prefix, dim=1),
        *param("pos", "embeddings.position_embeddings"),
        *linear("patch", "embeddings.patch_embeddings.projection"),
        *norm("blocks.{i}.ln_self", layer + "layernorm_before"),
        *linear("blocks.{i}.self_attn.qkv", attn + "query", attn + "key", attn + "value", bias=cfg.qkv_bias),
        *linear("blocks.{i}.self_attn.out", layer + "attention.output.dense"),
        *norm("blocks.{i}.ln_mlp", layer + "layernorm_after"),
        *linear("blocks.{i}.mlp.fc1", layer + "intermediate.dense"),
        *linear("blocks.{i}.mlp.fc2", layer + "output.dense"),
        *norm("norm", "layernorm"),
    ]
    return WeightTable(rules, ignore=[r"pooler\.dense\.(weight|bias)", r"embeddings\.mask_token"])


def reference_only(cfg: EncoderConfig) -> dict[str, tuple[int, ...]]:
    """Tensors the reference's ViTModel/DeiTModel has but ved does not use (the pooler), with their shapes."""
    out = cfg.hf.get("pooler_output_size") or cfg.hidden_size
    return {"pooler.dense.weight": (out, cfg.hidden_size), "pooler.dense.bias": (out,)}


# ViT-named configs' keys an override may add (the sizes, the image geometry, the dropouts)
VIT_FIELDS = frozenset({*SizeKeys().names(), "image_size", "patch_size", "num_channels"})
# the reference's _init_weights cases every vision family shares: learned tokens, positions and bias tables start at 0
VISION_INITS = (
    (r"embeddings\.(cls_token|distillation_token|position_embeddings|mask_token)", "zeros"),
    (r".*relative_position_bias_table", "zeros"),
)
_VIT = dict(read=config_from_hf, weights=weight_table, module=ViTEncoder, reference_only=reference_only,
            overridable=VIT_FIELDS | {"qkv_bias"})  # fmt: skip
RECORDS = (
    EncoderFamily(model_type="vit", **_VIT, prefix="vit.",
                  inits=((r"embeddings\.(cls_token|position_embeddings)", "trunc_normal"), *VISION_INITS)),
    EncoderFamily(model_type="deit", **_VIT, prefix="deit.", inits=VISION_INITS),
)  # fmt: skip
