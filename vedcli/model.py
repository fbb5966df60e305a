"""The composite model: an image encoder, an optional projection, a text decoder with cross-attention.

`encode` runs the encoder once per image; `new_cache` computes the cross-attention keys/values once per image and
preallocates the self-attention cache; `decode_step` advances it. Decoding strategies (decoding.py) drive these.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .checkpoints.weights import Rule, WeightTable, linear, to_hf, to_ved
from .config import ModelConfig
from .decoders import decoder_config, decoder_parameters, decoder_weights
from .decoders.stack import TextDecoder
from .encoders import build_encoder, encoder_config, encoder_parameters, encoder_reference_only, encoder_weights
from .errors import ModelError
from .layers import DecoderCache
from .validate import ConfigFieldError, Fields, check_memory, check_token_ids, show


@dataclass
class Seq2SeqOutput:
    logits: Tensor  # (B, T, V)
    loss: Tensor | None = None


def model_config(hf: dict, where: str | None = None, bytes_each: int = 2) -> ModelConfig:
    """ModelConfig from a VisionEncoderDecoder config.json dict.

    Every field ved reads is checked (a ConfigFieldError names it and `where`, the file), and so is the size of the
    whole model against this machine's memory, at `bytes_each` bytes per parameter (2: the least ved stores).
    """
    kind = hf.get("model_type")
    if kind != "vision-encoder-decoder":
        raise ModelError(f"not a vision-encoder-decoder checkpoint (model_type '{kind or 'unknown'}')", where)
    for side in ("encoder", "decoder"):
        if side not in hf:
            raise ModelError(f"the vision-encoder-decoder config has no {side} section ({side}: the {side}'s own "
                             "config)", where)  # fmt: skip
    encoder = encoder_config(hf["encoder"], where)
    decoder = decoder_config(hf["decoder"], where)
    top = Fields(hf, "", where)
    ids = {"decoder_start_token_id": top.token("decoder_start_token_id"), "pad_token_id": top.token("pad_token_id"),
           "eos_token_id": top.tokens("eos_token_id")}  # fmt: skip
    check_token_ids(ids, decoder.vocab_size, where)
    declared = decoder.hf.get("cross_attention_hidden_size")
    if declared is not None and declared != encoder.hidden_size:  # the reference refuses this pair too
        raise ConfigFieldError(f"decoder.cross_attention_hidden_size {show(declared)} is not the encoder's width "
                               f"{encoder.hidden_size}", where, "cross_attention_hidden_size", "decoder")  # fmt: skip
    cfg = ModelConfig(encoder=encoder, decoder=decoder, hf=hf, **ids)
    check_memory(model_parameters(cfg), bytes_each, where)
    return cfg


def model_parameters(cfg: ModelConfig) -> dict[str, int]:
    """About how many parameters the model has, by part, computed from the config alone."""
    parts = {**encoder_parameters(cfg.encoder), **decoder_parameters(cfg.decoder)}
    if cfg.projection:
        parts["enc_to_dec_proj"] = (cfg.encoder.hidden_size + 1) * cfg.decoder.hidden_size
    return parts


class VisionEncoderDecoder(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.encoder = build_encoder(config.encoder)
        d_enc, d_dec = config.encoder.hidden_size, config.decoder.hidden_size
        self.enc_to_dec_proj = nn.Linear(d_enc, d_dec) if config.projection else None
        self.decoder = TextDecoder(config.decoder)
        self.generation_config = None  # decoding defaults (generation_config.GenerationConfig), set by load_model

    @property
    def device(self) -> torch.device:
        return self.decoder.embed.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.decoder.embed.weight.dtype

    def encode(self, pixel_values: Tensor, interpolate_pos_encoding: bool | None = None) -> Tensor:
        """(B, 3, H, W) -> image features (B, N, C) as the decoder's cross-attention reads them.

        Images of another size than the encoder was trained for get resampled position embeddings, as the
        reference's `interpolate_pos_encoding=True` does; `False` refuses them, as the reference does by default.
        """
        self._check_size(pixel_values, interpolate_pos_encoding)
        x = self.encoder.forward_features(pixel_values.to(self.device, self.dtype))
        return self.enc_to_dec_proj(x) if self.enc_to_dec_proj is not None else x

    def _check_size(self, pixel_values: Tensor, interpolate_pos_encoding: bool | None) -> None:
        size = tuple(pixel_values.shape[-2:])
        # ViT and DeiT refuse other sizes unless asked to interpolate (BEiT and Swin take any size, as in the reference)
        refuses = getattr(self.encoder, "needs_interpolation_flag", False)
        if interpolate_pos_encoding is False and refuses and size != self.config.encoder.image_size:
            raise ModelError(f"image size {size} does not match the encoder's {self.config.encoder.image_size}")

    def new_cache(self, encoded: Tensor, group: int = 1, max_len: int = 64) -> DecoderCache:
        """Cross-attention K/V once per image, shared by `group` rows; self-attention cache for `max_len` tokens."""
        return self.decoder.new_cache(encoded, group, max_len)

    def decode_step(self, tokens: Tensor, cache: DecoderCache) -> Tensor:
        """(rows, T) new tokens -> (rows, T, V) logits; advances the cache by T."""
        return self.decoder(tokens.to(self.device), cache.cross, cache.self_kv, cache.group)

    def forward(
        self,
        pixel_values: Tensor | None = None,
        decoder_input_ids: Tensor | None = None,
        labels: Tensor | None = None,
        decoder_attention_mask: Tensor | None = None,
        encoder_outputs: Tensor | None = None,
        interpolate_pos_encoding: bool | None = None,
    ) -> Seq2SeqOutput:
        """Teacher-forced logits, and the loss when `labels` are given (-100 = ignored), as the reference computes."""
        if encoder_outputs is not None:
            memory = encoder_outputs
        else:
            memory = self.encode(pixel_values, interpolate_pos_encoding)
        if decoder_input_ids is None:
            if labels is None:
                raise ValueError("forward needs decoder_input_ids or labels")
            decoder_input_ids = self.shift_right(labels)
        mask = decoder_attention_mask.to(self.device) if decoder_attention_mask is not None else None
        logits = self.decoder(decoder_input_ids.to(self.device), self.decoder.cross_kv(memory), attention_mask=mask)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.to(self.device).reshape(-1))
        return Seq2SeqOutput(logits, loss)

    def shift_right(self, labels: Tensor) -> Tensor:
        """Decoder inputs for `labels`: start token first, -100 replaced by the pad token."""
        start, pad = self.config.decoder_start_token_id, self.config.pad_token_id
        if start is None or pad is None:
            raise ModelError("config.json needs decoder_start_token_id and pad_token_id to compute a loss")
        ids = labels.new_full(labels.shape, start)
        ids[:, 1:] = labels[:, :-1]
        return ids.masked_fill(ids == -100, pad)

    def generate(self, pixel_values: Tensor, interpolate_pos_encoding: bool | None = None, **options) -> Tensor:
        """Token ids as the reference's `generate` returns them (start token first, pad after eos)."""
        from .generation.decoding import DecodingOptions, generate

        self._check_size(pixel_values, interpolate_pos_encoding)
        gen = self.generation_config
        resolved = DecodingOptions.from_kwargs(**options).resolve(gen)
        with torch.inference_mode():
            sequences = generate(self, pixel_values, resolved, gen).sequences
        return sequences.clone()  # an ordinary tensor: usable as labels in a training step

    def weight_table(self) -> WeightTable:
        cfg = self.config
        table = encoder_weights(cfg.encoder).prefixed("encoder.", "encoder.")
        if cfg.projection:
            table = table + WeightTable(linear("enc_to_dec_proj", "enc_to_dec_proj"))
        return table + decoder_weights(cfg.decoder).prefixed("decoder.", "decoder.")

    def load_hf_state_dict(self, state: dict[str, Tensor], where: str | None = None, dtype=None) -> None:
        """Load HF-named weights strictly (see weights.to_ved), replacing the module's tensors."""
        table = self.weight_table()
        rules = self.weight_rules(table)
        shapes = {k: v.shape for k, v in self.state_dict().items()}
        tensors = to_ved(state, rules, table, shapes, where or "checkpoint")
        uncovered = set(shapes) - set(tensors) - set(table.tied)
        assert not uncovered, f"weight table misses {sorted(uncovered)}"
        hf_names = {r.ved: "+".join(r.hf) for r in rules}
        not_float = sorted(f"{hf_names[k]} ({str(v.dtype).removeprefix('torch.')})" for k, v in tensors.items()
                           if not v.is_floating_point())  # fmt: skip
        if not_float:
            raise ModelError(
                f"checkpoint does not match its config: not floating-point {', '.join(not_float[:6])}"
                + (f", ... ({len(not_float)} in all)" if len(not_float) > 6 else ""),
                where,
            )
        if dtype is not None:
            tensors = {k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}
        self.load_state_dict(tensors, strict=False, assign=True)
        for name, source in table.tied.items():
            owner, attr = _owner(self, name)
            setattr(owner, attr, _owner_get(self, source))
        self.decoder.init_buffers(self.device, self.dtype)

    def hf_state_dict(self) -> dict[str, Tensor]:
        """The weights under the reference's names (tied copies left out, as transformers saves them)."""
        return to_hf(self.state_dict(), self.weight_rules())

    def reference_only(self) -> dict[str, tuple[int, ...]]:
        """Tensors transformers' model has and ved does not use (an encoder pooler), by HF name, with shapes:
        written alongside ved's own so that transformers loads a saved folder without missing keys."""
        return {"encoder." + k: v for k, v in encoder_reference_only(self.config.encoder).items()}

    def weight_rules(self, table: WeightTable | None = None) -> list[Rule]:
        """The table with layer indices filled in: encoder and decoder have their own layer counts."""
        table = table or self.weight_table()
        cfg = self.config
        enc = WeightTable([r for r in table.rules if r.ved.startswith("encoder.")])
        rest = WeightTable([r for r in table.rules if not r.ved.startswith("encoder.")])
        return enc.expand(cfg.encoder.num_layers) + rest.expand(cfg.decoder.num_layers)


def _owner(root: nn.Module, name: str) -> tuple[nn.Module, str]:
    path, _, attr = name.rpartition(".")
    return root.get_submodule(path), attr


def _owner_get(root: nn.Module, name: str):
    owner, attr = _owner(root, name)
    return getattr(owner, attr)
