"""Tiny random VisionEncoderDecoder checkpoints written by transformers (the reference), for parity tests.

Sizes differ from every default (and between encoder and decoder, so `enc_to_dec_proj` appears), and every weight,
LayerNorm and bias is random, so a wrong mapping or a missed detail changes the numbers.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import transformers as T

from support.tiny_tokenizers import WRITERS

IMAGE_SIZE = 32  # pixels; patch 8 -> 16 patches


def encoder_config(kind: str, **over) -> T.PretrainedConfig:
    common = dict(
        hidden_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        image_size=IMAGE_SIZE,
        patch_size=8,
        layer_norm_eps=1e-6,
    )
    common.update(over)
    if kind == "vit":
        return T.ViTConfig(**common)
    if kind == "deit":
        return T.DeiTConfig(**common)
    if kind in BEIT_VARIANTS:
        klass = T.Data2VecVisionConfig if kind == "data2vec-vision" else T.BeitConfig
        return klass(**{**BEIT_VARIANTS[kind], **common})
    if kind in SWIN_VARIANTS:  # stages set their own widths: none of the common sizes apply
        klass = T.DonutSwinConfig if kind == "donut-swin" else T.SwinConfig
        return klass(**{**SWIN_VARIANTS[kind], **over})
    raise KeyError(kind)


# Swin-style encoder kind -> its sizes, chosen so every padding and the unshifted single-window stage occur at 32 px.
SWIN_VARIANTS = {
    # patch 3 pads 32 px to 11x11 patches; window 6 pads that to 12x12 and shifts by 3; merging pads 11 to 12;
    # stage 2 is 6x6, one window, so it is not shifted. Swin ends with a LayerNorm.
    "swin": dict(
        image_size=IMAGE_SIZE,
        patch_size=3,
        embed_dim=24,
        depths=[2, 2],
        num_heads=[2, 4],
        window_size=6,
        mlp_ratio=2.5,
        layer_norm_eps=1e-6,
    ),
    # 8x8 patches in windows of 3 (padded to 9x9, shift 1), then 4x4 (padded to 6x6, shift 1); no final LayerNorm.
    "donut-swin": dict(
        image_size=IMAGE_SIZE,
        patch_size=4,
        embed_dim=28,
        depths=[2, 2],
        num_heads=[2, 4],
        window_size=3,
        layer_norm_eps=1e-6,
    ),
}


# BEiT-style encoder kind -> its options: between them every one is switched on and off (layer_scale_init_value 0
# turns layer scale off; use_mean_pooling drops the final LayerNorm from the sequence the decoder reads).
BEIT_VARIANTS = {
    "beit": dict(
        use_relative_position_bias=True,
        use_absolute_position_embeddings=True,
        use_mean_pooling=False,
        use_mask_token=True,
        layer_scale_init_value=0.2,
        hidden_act="gelu_new",
    ),
    "beit-shared": dict(use_shared_relative_position_bias=True, use_mean_pooling=True, layer_scale_init_value=0.0),
    "data2vec-vision": dict(
        use_relative_position_bias=True,
        use_shared_relative_position_bias=True,
        use_absolute_position_embeddings=True,
        use_mean_pooling=True,
        layer_scale_init_value=0.05,
    ),
}


# decoder kind -> (tokenizer layout, special tokens (start, eos, pad) as token strings)
DECODERS = {
    "gpt2": ("gpt2-bpe", ("<|endoftext|>",) * 3),
    "bert": ("wordpiece", ("[CLS]", "[SEP]", "[PAD]")),
    "roberta": ("roberta-bpe", ("<s>", "</s>", "<pad>")),
    "trocr": ("roberta-bpe", ("</s>", "</s>", "<pad>")),
    "trocr-sinusoidal": ("sentencepiece", ("</s>", "</s>", "<pad>")),
    "bart": ("roberta-bpe", ("<s>", "</s>", "<pad>")),
    "mbart": ("sentencepiece", ("<s>", "</s>", "<pad>")),  # Donut: XLM-R-style SentencePiece, <s> starts
    "electra": ("wordpiece", ("[CLS]", "[SEP]", "[PAD]")),
    "xlm-roberta": ("sentencepiece", ("<s>", "</s>", "<pad>")),
    "camembert": ("sentencepiece", ("<s>", "</s>", "<pad>")),
    "bert-generation": ("sentencepiece", ("<s>", "</s>", "<pad>")),
}


def decoder_config(kind: str, vocab_size: int, pad: int, bos: int, eos: int, enc_hidden: int, **over):
    ids = dict(pad_token_id=pad, bos_token_id=bos, eos_token_id=eos, is_decoder=True, add_cross_attention=True)
    if kind == "gpt2":
        cfg = dict(n_embd=40, n_layer=2, n_head=4, n_inner=72, n_positions=64, layer_norm_epsilon=1e-4)
        return T.GPT2Config(vocab_size=vocab_size, **{**ids, **cfg, **over})
    if kind in ("bert", "roberta"):
        cfg = dict(hidden_size=36, num_hidden_layers=2, num_attention_heads=3, intermediate_size=50)
        cfg.update(max_position_embeddings=64, layer_norm_eps=1e-7, hidden_act="gelu")
        klass = T.BertConfig if kind == "bert" else T.RobertaConfig
        return klass(vocab_size=vocab_size, **{**ids, **cfg, **over})
    if kind.startswith("trocr"):
        cfg = dict(d_model=32, decoder_layers=2, decoder_attention_heads=4, decoder_ffn_dim=56)
        cfg.update(max_position_embeddings=64, scale_embedding=True, layernorm_embedding=True)
        cfg.update(cross_attention_hidden_size=enc_hidden, activation_function="gelu")
        cfg.update(use_learned_position_embeddings=kind == "trocr")
        return T.TrOCRConfig(vocab_size=vocab_size, **{**ids, **cfg, **over})
    if kind in ("bart", "mbart"):
        cfg = dict(d_model=24, decoder_layers=2, decoder_attention_heads=3, decoder_ffn_dim=44)
        cfg.update(max_position_embeddings=48)
        if kind == "bart":
            return T.BartConfig(vocab_size=vocab_size, activation_function="relu", **{**ids, **cfg, **over})
        return T.MBartConfig(vocab_size=vocab_size, scale_embedding=True, **{**ids, **cfg, **over})
    if kind == "electra":  # narrower embeddings than layers, so embeddings_project and the generator head matter
        cfg = dict(hidden_size=40, embedding_size=24, num_hidden_layers=2, num_attention_heads=4, intermediate_size=52)
        cfg.update(max_position_embeddings=64, layer_norm_eps=1e-6, hidden_act="silu")
        return T.ElectraConfig(vocab_size=vocab_size, **{**ids, **cfg, **over})
    if kind in ("xlm-roberta", "camembert"):
        cfg = dict(hidden_size=28, num_hidden_layers=2, num_attention_heads=4, intermediate_size=44)
        cfg.update(max_position_embeddings=64, layer_norm_eps=1e-6, hidden_act="gelu")
        klass = T.XLMRobertaConfig if kind == "xlm-roberta" else T.CamembertConfig
        return klass(vocab_size=vocab_size, **{**ids, **cfg, **over})
    if kind == "bert-generation":
        cfg = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48)
        cfg.update(max_position_embeddings=64, layer_norm_eps=1e-6, hidden_act="gelu_new")
        return T.BertGenerationConfig(vocab_size=vocab_size, **{**ids, **cfg, **over})
    raise KeyError(kind)


def randomize(model: torch.nn.Module, seed: int = 0, scale: float = 0.3) -> None:
    """Every parameter random: matrices N(0, scale), vectors (norms, biases) perturbed around their init."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            noise = torch.randn(p.shape, generator=g)
            if p.dim() >= 2:
                p.copy_(noise * scale)
            else:
                p.add_(noise * 0.1)


def write_checkpoint(
    folder: str | Path,
    encoder: str = "vit",
    decoder: str = "gpt2",
    seed: int = 0,
    safe: bool = True,
    max_shard_size: str | None = None,
    encoder_over: dict | None = None,
    decoder_over: dict | None = None,
    eos_boost: float = 1.0,
) -> Path:
    """A complete checkpoint folder (weights, config, tokenizer, preprocessor config) written by transformers."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    layout, specials = DECODERS[decoder]
    vocab_size = WRITERS[layout](folder)
    tok = T.AutoTokenizer.from_pretrained(folder)
    start, eos, pad = (tok.convert_tokens_to_ids(t) for t in specials)
    enc_cfg = encoder_config(encoder, **(encoder_over or {}))
    dec_cfg = decoder_config(decoder, vocab_size, pad, start, eos, enc_cfg.hidden_size, **(decoder_over or {}))
    cfg = T.VisionEncoderDecoderConfig.from_encoder_decoder_configs(enc_cfg, dec_cfg)
    cfg.decoder_start_token_id, cfg.pad_token_id, cfg.eos_token_id = start, pad, eos
    torch.manual_seed(seed)
    model = T.VisionEncoderDecoderModel(cfg)
    randomize(model, seed)
    with torch.no_grad():  # make end-of-sequence likely enough that generations stop at different lengths
        model.decoder.get_output_embeddings().weight[eos] *= eos_boost
    if safe:
        model.save_pretrained(folder, **({"max_shard_size": max_shard_size} if max_shard_size else {}))
    else:  # transformers 5 writes only safetensors: write the legacy pickle layout the way 4.x did
        model.save_pretrained(folder)
        write_bin(folder, legacy_state(folder, dec_cfg), shards=2 if max_shard_size else 1)
        (folder / "model.safetensors").unlink()
    size = enc_cfg.image_size
    height, width = size if isinstance(size, (list, tuple)) else (size, size)
    T.ViTImageProcessor(size={"height": height, "width": width}).save_pretrained(folder)
    return folder


def legacy_state(folder: Path, dec_cfg) -> dict:
    """The saved tensors plus what transformers 4 also pickled: tied heads and GPT-2's causal-mask buffers."""
    from safetensors.torch import load_file

    state = load_file(folder / "model.safetensors")
    if dec_cfg.model_type == "gpt2":
        state["decoder.lm_head.weight"] = state["decoder.transformer.wte.weight"]
        n = dec_cfg.n_positions
        for i in range(dec_cfg.n_layer):
            state[f"decoder.transformer.h.{i}.attn.bias"] = torch.tril(torch.ones(n, n, dtype=torch.uint8))[None, None]
            state[f"decoder.transformer.h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    return state


def write_bin(folder: Path, state: dict, shards: int = 1) -> None:
    """pytorch_model.bin (all keys, tied ones included, as transformers 4 saved), or shards plus their index."""
    state = {k: v.clone() for k, v in state.items()}
    if shards == 1:
        torch.save(state, folder / "pytorch_model.bin")
        return
    names = list(state)
    weight_map = {}
    for i in range(shards):
        part = names[i::shards]
        file = f"pytorch_model-{i + 1:05d}-of-{shards:05d}.bin"
        torch.save({k: state[k] for k in part}, folder / file)
        weight_map.update({k: file for k in part})
    total = sum(v.numel() * v.element_size() for v in state.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / "pytorch_model.bin.index.json").write_text(json.dumps(index, indent=2))


def natural_eos(folder: str | Path, pixels: torch.Tensor) -> int:
    """Make end-of-sequence a token the random model emits mid-sentence for some images and not others.

    Rewrites generation_config.json so both the reference and ved stop there; returns the chosen id. Without this,
    tiny random models rarely stop and the stopping logic (beam finalisation, padding) would go untested.
    """
    folder = Path(folder)
    model = reference(folder)
    gen = model.generation_config
    out = model.generate(pixels, max_new_tokens=12, num_beams=1, eos_token_id=None, min_new_tokens=12)[:, 1:]
    counts: dict[int, set[int]] = {}
    for row, seq in enumerate(out.tolist()):
        for tok in seq[1:9]:
            counts.setdefault(tok, set()).add(row)
    specials = {gen.pad_token_id, gen.decoder_start_token_id}
    candidates = [t for t, rows in counts.items() if 0 < len(rows) < len(out) and t not in specials]
    if not candidates:
        raise RuntimeError("no token fits as end-of-sequence; try other pixels")
    eos = max(candidates, key=lambda t: (len(counts[t]), -t))
    data = json.loads((folder / "generation_config.json").read_text())
    data["eos_token_id"] = eos
    (folder / "generation_config.json").write_text(json.dumps(data, indent=2))
    return eos


def reference(folder: str | Path, **kwargs) -> T.VisionEncoderDecoderModel:
    """transformers' model for `folder` (kwargs go to from_pretrained), in eval mode."""
    return fill_sinusoidal_table(T.VisionEncoderDecoderModel.from_pretrained(folder, **kwargs).eval())


def fill_sinusoidal_table(model: T.VisionEncoderDecoderModel) -> T.VisionEncoderDecoderModel:
    """transformers 5 builds TrOCR's sinusoidal table on the meta device in from_pretrained and never fills it."""
    positions = getattr(getattr(model.decoder, "model", None), "decoder", None)
    positions = getattr(positions, "embed_positions", None)
    if positions is not None and getattr(positions, "weights", None) is not None and positions.weights.is_meta:
        table = positions.get_embedding(positions.weights.shape[0], positions.embedding_dim, positions.padding_idx)
        positions.weights = table.to(model.dtype)
    return model


def read_config(folder: str | Path) -> dict:
    return json.loads((Path(folder) / "config.json").read_text())
