"""`ved compose` against the reference: presets and pretrained parts (written by transformers) become a
VisionEncoderDecoder folder that transformers loads without missing or unexpected keys and ved runs with the same
logits; pretrained tensors arrive unchanged, exactly the reference's new layers are new, and new tensors follow the
reference's initialisation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import transformers as T
from PIL import Image
from safetensors.torch import load_file
from typer.testing import CliRunner

from support.checkpoints import DECODERS, IMAGE_SIZE, decoder_config, encoder_config, randomize
from support.tiny_tokenizers import WRITERS
from vedcli.checkpoints import presets
from vedcli.checkpoints.load import load_model
from vedcli.cli import app
from vedcli.commands.compose import ComposeOptions, compose
from vedcli.processing.tokenizer import load_tokenizer

T.logging.set_verbosity_error()
T.utils.logging.disable_progress_bar()


def ved(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


# Overrides that shrink each preset family to a tiny model. Widths differ between the sides (so enc_to_dec_proj
# appears) and initializer ranges differ from the presets' 0.02 (so a wrong standard deviation shows).
_VIT = ["hidden_size=32", "num_hidden_layers=1", "num_attention_heads=2", "intermediate_size=48",
        f"image_size={IMAGE_SIZE}", "patch_size=8", "initializer_range=0.05"]  # fmt: skip
ENCODER_SHRINK = {
    "vit": _VIT,
    "deit": _VIT,
    "beit": [*_VIT, "layer_scale_init_value=0.3"],
    "swin": [
        "embed_dim=16",
        "depths=[1,1]",
        "num_heads=[2,2]",
        "window_size=4",
        f"image_size={IMAGE_SIZE}",
        "patch_size=4",
        "initializer_range=0.05",
    ],  # fmt: skip
}
ENCODER_SHRINK["donut-swin"] = ENCODER_SHRINK["swin"]
_BERT = ["hidden_size=24", "num_hidden_layers=2", "num_attention_heads=2", "intermediate_size=40",
         "max_position_embeddings=64", "initializer_range=0.07"]  # fmt: skip
_FAIRSEQ = ["d_model=24", "decoder_layers=2", "decoder_attention_heads=2", "decoder_ffn_dim=40",
            "max_position_embeddings=64", "init_std=0.07"]  # fmt: skip
DECODER_SHRINK = {
    "gpt2": ["n_embd=24", "n_layer=2", "n_head=2", "n_positions=64", "initializer_range=0.07"],
    "bert": _BERT,
    "roberta": _BERT,
    "xlm-roberta": _BERT,
    "electra": [*_BERT, "embedding_size=16"],
    "bart": _FAIRSEQ,
    "mbart": _FAIRSEQ,
    "trocr": _FAIRSEQ,
    "distilbert": [
        "dim=24",
        "n_layers=2",
        "n_heads=2",
        "hidden_dim=40",
        "max_position_embeddings=64",
        "initializer_range=0.07",
    ],  # fmt: skip
}

ENCODER_PRESETS = presets.preset_names("encoder")
DECODER_PRESETS = presets.preset_names("decoder")
# every encoder preset with some decoder preset and every decoder preset with some encoder preset
PRESET_PAIRS = [
    (ENCODER_PRESETS[i % len(ENCODER_PRESETS)], DECODER_PRESETS[i % len(DECODER_PRESETS)])
    for i in range(max(len(ENCODER_PRESETS), len(DECODER_PRESETS)))
]


def shrink_flags(encoder: str, decoder: str) -> list[str]:
    enc_kind = presets.load_preset(encoder, "encoder")["model_type"]
    dec_kind = presets.load_preset(decoder, "decoder")["model_type"]
    flags = [f for o in ENCODER_SHRINK[enc_kind] for f in ("--encoder-config", o)]
    return flags + [f for o in DECODER_SHRINK[dec_kind] for f in ("--decoder-config", o)]


def probe(vocab: int, batch: int = 2, length: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    pixels = torch.randn(batch, 3, IMAGE_SIZE, IMAGE_SIZE, generator=g)
    return pixels, torch.randint(0, vocab, (batch, length), generator=g)


def reference_loads_cleanly(folder: Path) -> T.VisionEncoderDecoderModel:
    """transformers' model for `folder`, asserting that every key it expects is there and nothing else."""
    model, info = T.VisionEncoderDecoderModel.from_pretrained(folder, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    return model.eval()


def assert_same_logits_and_greedy(folder: Path, ref: T.VisionEncoderDecoderModel) -> None:
    ours = load_model(folder)
    pixels, ids = probe(ours.config.decoder.vocab_size)
    with torch.no_grad():
        expected = ref(pixel_values=pixels, decoder_input_ids=ids).logits
        got = ours(pixel_values=pixels, decoder_input_ids=ids).logits
        ref_ids = ref.generate(pixels, max_new_tokens=3, num_beams=1, do_sample=False)
    assert (got - expected).abs().max() < 1e-4
    assert torch.equal(ours.generate(pixels, max_new_tokens=3, num_beams=1), ref_ids)


def file_state(model: T.PreTrainedModel, folder: Path) -> dict[str, torch.Tensor]:
    """The tensors as transformers writes them (names in memory may differ: BEiT's are renamed on load)."""
    model.save_pretrained(folder)
    return load_file(folder / "model.safetensors")


def profile(t: torch.Tensor) -> tuple:
    """How a tensor was initialised, as far as one sample tells: all one value, or random (with its zero rows)."""
    t = t.float()
    if bool((t == t.flatten()[0]).all()):
        return ("constant", round(t.flatten()[0].item(), 6))
    zero_rows = tuple((t == 0).all(dim=1).nonzero().flatten().tolist()) if t.dim() == 2 else ()
    return ("random", zero_rows)


def assert_initialised_like_reference(ours: dict[str, torch.Tensor], ref: dict[str, torch.Tensor], keys) -> None:
    """Same kind of values for every key; for random tensors big enough to tell, the same standard deviation."""
    for key in keys:
        if not ref[key].is_floating_point():  # a derived buffer (Donut-Swin's relative position index)
            assert torch.equal(ours[key], ref[key]), key
            continue
        a, b = ours[key].float(), ref[key].float()
        kind = profile(a)
        assert kind == profile(b), key
        if kind[0] == "random":
            assert abs(a.mean().item()) < 4 * b.std().item() / a.numel() ** 0.5 + 1e-6, key
            if a.numel() >= 400:
                rows = [r for r in range(a.shape[0]) if r not in kind[1]] if a.dim() == 2 else slice(None)
                ratio = a[rows].std().item() / b[rows].std().item()
                assert 0.8 < ratio < 1.25, (key, ratio)


# ------------------------------------------------------------------------------------------------------------------
# Presets
# ------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoder,decoder", PRESET_PAIRS, ids=[f"{e}+{d}" for e, d in PRESET_PAIRS])
def test_preset_pair(tmp_path: Path, encoder: str, decoder: str) -> None:
    out = tmp_path / "model"
    result = ved("compose", encoder, decoder, "-o", out, *shrink_flags(encoder, decoder), "--seed", "3")
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.stdout
    assert "new: the whole encoder" in result.stderr and "the whole decoder" in result.stderr

    ref = reference_loads_cleanly(out)
    assert_same_logits_and_greedy(out, ref)

    # every tensor drawn as the reference's own random initialisation draws it
    saved = load_file(out / "model.safetensors")
    torch.manual_seed(0)
    fresh = T.VisionEncoderDecoderModel(T.VisionEncoderDecoderConfig.from_pretrained(out))
    fresh = file_state(fresh, tmp_path / "fresh")
    assert_initialised_like_reference(saved, fresh, saved)

    config = json.loads((out / "config.json").read_text())
    assert config["decoder"]["is_decoder"] and config["decoder"]["add_cross_attention"]
    assert config["model_type"] == "vision-encoder-decoder" and config["tie_word_embeddings"] is False
    assert (
        config["vocab_size"]
        == config["decoder"]["vocab_size"]
        == len(load_tokenizer(out))
        == 261 - 4 * (config["decoder"]["model_type"] == "gpt2")
    )


def test_the_short_names_compose(tmp_path: Path) -> None:
    """`ved compose vit bert` (the issue's example) works as written, and the overrides land in config.json."""
    out = tmp_path / "vit-bert"
    result = ved("compose", "vit", "bert", "-o", out, *shrink_flags("vit", "bert"))
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["encoder"]["model_type"] == "vit" and config["encoder"]["hidden_size"] == 32
    assert config["decoder"]["model_type"] == "bert" and config["decoder"]["num_hidden_layers"] == 2
    assert load_model(out).config.decoder.num_layers == 2
    assert "enc_to_dec_proj" in result.stderr  # 32 -> 24


def test_seed_makes_it_reproducible(tmp_path: Path) -> None:
    flags = shrink_flags("deit-tiny", "gpt2")
    for name, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        assert ved("compose", "deit-tiny", "gpt2", "-o", tmp_path / name, *flags, "--seed", seed).exit_code == 0
    a, b, c = (load_file(tmp_path / n / "model.safetensors") for n in "abc")
    key = "decoder.transformer.h.0.attn.c_attn.weight"
    assert torch.equal(a[key], b[key]) and not torch.equal(a[key], c[key])


def test_byte_level_tokenizer_for_preset_decoders(tmp_path: Path) -> None:
    out = tmp_path / "m"
    assert ved("compose", "vit", "roberta", "-o", out, *shrink_flags("vit", "roberta")).exit_code == 0
    ours, theirs = load_tokenizer(out), T.AutoTokenizer.from_pretrained(out)
    text = "Zürich, 10:30 — naïve café!"
    ids = ours.encode(text)
    assert ids == theirs.encode(text) and len(ids) == len(text.encode("utf-8"))  # one token per byte
    assert ours.decode(ids) == theirs.decode(ids) == text
    config = json.loads((out / "config.json").read_text())
    # RoBERTa's layout: <s> 0, <pad> 1 (its positions count from pad + 1), </s> 2
    assert (config["decoder_start_token_id"], config["pad_token_id"], config["eos_token_id"]) == (0, 1, 2)
    assert config["decoder"]["pad_token_id"] == 1
    generation = json.loads((out / "generation_config.json").read_text())
    assert (generation["decoder_start_token_id"], generation["eos_token_id"], generation["pad_token_id"]) == (0, 2, 1)


def test_tokenizer_flag_sets_the_vocabulary(tmp_path: Path) -> None:
    source = tmp_path / "tok"
    size = WRITERS["wordpiece"](source)
    out = tmp_path / "m"
    result = ved("compose", "vit", "bert", "-o", out, "--tokenizer", source, *shrink_flags("vit", "bert"))
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    tok = T.AutoTokenizer.from_pretrained(source)
    assert config["decoder"]["vocab_size"] == config["vocab_size"] == size
    assert config["decoder_start_token_id"] == tok.convert_tokens_to_ids("[CLS]")
    assert config["eos_token_id"] == tok.convert_tokens_to_ids("[SEP]")
    assert config["pad_token_id"] == tok.convert_tokens_to_ids("[PAD]")
    assert T.AutoTokenizer.from_pretrained(out).encode("a dog") == tok.encode("a dog")


def test_composed_model_captions_right_away(tmp_path: Path) -> None:
    out = tmp_path / "m"
    assert ved("compose", "vit", "gpt2", "-o", out, *shrink_flags("vit", "gpt2")).exit_code == 0
    image = tmp_path / "red.png"
    Image.new("RGB", (48, 40), (200, 30, 30)).save(image)
    result = ved("caption", image, "--model", out, "--max-new-tokens", "4", "--format", "jsonl")
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)
    assert row["file"] == str(image) and isinstance(row["text"], str)


# ------------------------------------------------------------------------------------------------------------------
# Pretrained parts, written by transformers
# ------------------------------------------------------------------------------------------------------------------

# source name -> (transformers class, config kind in checkpoints.encoder_config)
ENCODER_SOURCES = {
    "vit-model": (T.ViTModel, "vit"),
    "vit-classifier": (T.ViTForImageClassification, "vit"),
    "deit-teacher": (T.DeiTForImageClassificationWithTeacher, "deit"),
    "beit-mean-pooling": (T.BeitModel, "beit-shared"),
    "swin-model": (T.SwinModel, "swin"),
}
# source name -> (transformers class, decoder kind in checkpoints.DECODERS, extra config)
DECODER_SOURCES = {
    "gpt2-lm": (T.GPT2LMHeadModel, "gpt2", {}),
    "gpt2-model": (T.GPT2Model, "gpt2", {}),
    "bert-mlm": (T.BertForMaskedLM, "bert", {}),
    "bert-model": (T.BertModel, "bert", {}),
    "roberta-mlm": (T.RobertaForMaskedLM, "roberta", {}),
    "bart": (
        T.BartForConditionalGeneration,
        "bart",
        dict(encoder_layers=1, encoder_attention_heads=3, encoder_ffn_dim=20),
    ),
    "electra-generator": (T.ElectraForMaskedLM, "electra", {}),
    "electra-discriminator": (T.ElectraForPreTraining, "electra", {}),
    "trocr": (T.TrOCRForCausalLM, "trocr", {}),
}
PRETRAINED_PAIRS = [(list(ENCODER_SOURCES)[i % len(ENCODER_SOURCES)], name) for i, name in enumerate(DECODER_SOURCES)]


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """sources(name) -> folder with a tiny random transformers model of that name (and its tokenizer), made once."""
    made: dict[str, Path] = {}

    def make(name: str) -> Path:
        if name not in made:
            folder = tmp_path_factory.mktemp(name)
            if name in ENCODER_SOURCES:
                klass, kind = ENCODER_SOURCES[name]
                config = encoder_config(kind, num_labels=5) if klass is not T.SwinModel else encoder_config(kind)
                model = klass(config)
                size = {"height": IMAGE_SIZE, "width": IMAGE_SIZE}
                T.ViTImageProcessor(size=size, image_mean=[0.4] * 3).save_pretrained(folder)
            else:
                model = write_language_model(folder, name)
            randomize(model, seed=len(made))
            model.save_pretrained(folder)
            made[name] = folder
        return made[name]

    return make


def write_language_model(folder: Path, name: str):
    """A tiny language model of `name` with its tokenizer in `folder` (a plain LM: no cross-attention)."""
    klass, kind, extra = DECODER_SOURCES[name] if name in DECODER_SOURCES else (T.DistilBertForMaskedLM, "bert", {})
    layout, specials = DECODERS[kind]
    vocab = WRITERS[layout](folder)
    tok = T.AutoTokenizer.from_pretrained(folder)
    start, eos, pad = (tok.convert_tokens_to_ids(t) for t in specials)
    if name.startswith("distilbert"):
        return klass(T.DistilBertConfig(vocab_size=vocab, dim=32, n_layers=2, n_heads=4, hidden_dim=48,
                                        max_position_embeddings=64, pad_token_id=pad, activation="gelu"))  # fmt: skip
    plain = dict(is_decoder=kind == "trocr", add_cross_attention=False)
    return klass(decoder_config(kind, vocab, pad, start, eos, 48, **plain, **extra))


def reference_new_keys(encoder: Path, decoder: Path) -> set[str]:
    """The tensors the reference initialises when it joins these two: what its encoder and decoder do not find in
    the sources (`from_encoder_decoder_pretrained` loads them just so), and the projection when widths differ."""
    enc, enc_info = T.AutoModel.from_pretrained(encoder, output_loading_info=True)
    dec, dec_info = T.AutoModelForCausalLM.from_pretrained(
        decoder, is_decoder=True, add_cross_attention=True, output_loading_info=True
    )
    new = {f"encoder.{k}" for k in enc_info["missing_keys"]} | {f"decoder.{k}" for k in dec_info["missing_keys"]}
    declared = getattr(dec.config, "cross_attention_hidden_size", None)
    if enc.config.hidden_size != dec.config.hidden_size and declared is None:
        new |= {"enc_to_dec_proj.weight", "enc_to_dec_proj.bias"}
    return new


@pytest.mark.parametrize("encoder,decoder", PRETRAINED_PAIRS, ids=[f"{e}+{d}" for e, d in PRETRAINED_PAIRS])
def test_pretrained_parts(tmp_path: Path, sources, encoder: str, decoder: str) -> None:
    enc_dir, dec_dir = sources(encoder), sources(decoder)
    out = tmp_path / "model"
    done = compose(ComposeOptions(str(enc_dir), str(dec_dir), out, seed=1))

    ref = reference_loads_cleanly(out)
    assert_same_logits_and_greedy(out, ref)

    # the reference's own composite holds the same tensors; exactly its new layers are new (leaving out names it
    # reports for tied copies it does not write); everything else is the sources' tensors, unchanged
    joined = file_state(T.VisionEncoderDecoderModel.from_encoder_decoder_pretrained(enc_dir, dec_dir), tmp_path / "r")
    saved = load_file(out / "model.safetensors")
    assert set(saved) == set(joined)
    expected_new = reference_new_keys(enc_dir, dec_dir) & set(joined)
    if decoder == "bart":
        # transformers 5 leaves BartForCausalLM's token embeddings random when a BartForConditionalGeneration file
        # holds them as model.shared.weight only; ved takes that shared matrix
        shared = "decoder.model.decoder.embed_tokens.weight"
        expected_new.remove(shared)
        assert torch.equal(saved[shared], load_file(dec_dir / "model.safetensors")["model.shared.weight"])
        joined[shared] = saved[shared]
    assert set(done.new_keys) == expected_new
    for key, tensor in saved.items():
        if key not in done.new_keys:
            assert torch.equal(tensor, joined[key]), key
    assert_initialised_like_reference(saved, joined, done.new_keys)
    # TrOCR's and BART's decoders come with cross-attention; the others get it new
    has_cross = DECODER_SOURCES[decoder][1] in ("trocr", "bart")
    assert any("crossattention" in k or "encoder_attn" in k for k in done.new_keys) != has_cross

    # the decoder family's special tokens, with the source tokenizer's ids
    tok = T.AutoTokenizer.from_pretrained(dec_dir)
    start, eos, pad = (tok.convert_tokens_to_ids(t) for t in DECODERS[DECODER_SOURCES[decoder][1]][1])
    config = json.loads((out / "config.json").read_text())
    assert (config["decoder_start_token_id"], config["eos_token_id"], config["pad_token_id"]) == (start, eos, pad)
    assert config["vocab_size"] == config["decoder"]["vocab_size"] == ref.decoder.config.vocab_size
    # the tokenizer and image processor come from the sources
    assert T.AutoTokenizer.from_pretrained(out).encode("a red bus") == tok.encode("a red bus")
    assert json.loads((out / "preprocessor_config.json").read_text())["image_mean"] == [0.4] * 3


def test_pretrained_dtype_is_kept_and_fp16_on_request(tmp_path: Path, sources) -> None:
    enc_dir, dec_dir = sources("vit-model"), sources("gpt2-lm")
    done = compose(ComposeOptions(str(enc_dir), str(dec_dir), tmp_path / "a"))
    assert done.dtype == torch.float32
    result = ved("compose", enc_dir, dec_dir, "-o", tmp_path / "b", "--dtype", "fp16")
    assert result.exit_code == 0, result.output
    saved = load_file(tmp_path / "b" / "model.safetensors")
    source = load_file(enc_dir / "model.safetensors")
    assert all(t.dtype == torch.float16 for t in saved.values())
    key = "encoder.layer.0.attention.attention.query.weight"
    assert torch.equal(saved["encoder." + key], source[key].half())
    assert json.loads((tmp_path / "b" / "config.json").read_text())["dtype"] == "float16"


def test_pretrained_with_overrides_takes_the_first_layers(tmp_path: Path, sources) -> None:
    """As the reference does with decoder_num_hidden_layers=1: the first layer is loaded, the rest left out."""
    enc_dir, dec_dir = sources("vit-model"), sources("bert-mlm")
    result = ved("compose", enc_dir, dec_dir, "-o", tmp_path / "m", "--decoder-config", "num_hidden_layers=1")
    assert result.exit_code == 0, result.output
    assert "left out of the decoder source: bert.encoder (16 tensors)" in result.stderr
    ref = reference_loads_cleanly(tmp_path / "m")
    joined = T.VisionEncoderDecoderModel.from_encoder_decoder_pretrained(enc_dir, dec_dir, decoder_num_hidden_layers=1)
    joined = file_state(joined, tmp_path / "r")
    saved = load_file(tmp_path / "m" / "model.safetensors")
    key = "decoder.bert.encoder.layer.0.output.dense.weight"
    assert torch.equal(saved[key], joined[key])
    assert ref.decoder.config.num_hidden_layers == 1


def test_cross_attention_that_does_not_fit_starts_anew(tmp_path: Path, sources) -> None:
    """TrOCR's cross-attention reads 48-wide features; a 32-wide encoder gets new key/value projections and keeps
    the rest of the pretrained cross-attention (as the reference would with cross_attention_hidden_size=32)."""
    out = tmp_path / "m"
    result = ved("compose", "vit", sources("trocr"), "-o", out, *shrink_flags("vit", "gpt2")[:14])
    assert result.exit_code == 0, result.output
    assert "cross-attention does not fit this encoder and starts anew" in result.stderr
    config = json.loads((out / "config.json").read_text())
    assert config["decoder"]["cross_attention_hidden_size"] == config["encoder"]["hidden_size"] == 32
    assert_same_logits_and_greedy(out, reference_loads_cleanly(out))
    saved, source = load_file(out / "model.safetensors"), load_file(sources("trocr") / "model.safetensors")
    layer = "model.decoder.layers.1.encoder_attn."
    assert torch.equal(saved[f"decoder.{layer}q_proj.weight"], source[f"{layer}q_proj.weight"])
    assert saved[f"decoder.{layer}k_proj.weight"].shape == (32, 32) != source[f"{layer}k_proj.weight"].shape


def test_halves_of_a_published_composite(tmp_path: Path, tiny) -> None:
    """Encoder and decoder taken back out of one VisionEncoderDecoder checkpoint: every tensor returns, cross-attention
    included; only the projection between them (part of neither half) is new."""
    published = tiny("vit", "gpt2")
    done = compose(ComposeOptions(str(published), str(published), tmp_path / "m"))
    assert done.new_keys == ["enc_to_dec_proj.weight", "enc_to_dec_proj.bias"]
    saved, source = load_file(tmp_path / "m" / "model.safetensors"), load_file(published / "model.safetensors")
    assert set(saved) == set(source)
    assert all(torch.equal(saved[k], source[k]) for k in saved if not k.startswith("enc_to_dec_proj"))
    reference_loads_cleanly(tmp_path / "m")


# ------------------------------------------------------------------------------------------------------------------
# DistilBERT as a decoder
# ------------------------------------------------------------------------------------------------------------------


def causal_distilbert_logits(model: T.DistilBertForMaskedLM, ids: torch.Tensor) -> torch.Tensor:
    """DistilBERT's own layers with a causal mask: what ved's BERT decoder must compute from the same weights."""
    t = ids.shape[1]
    mask = torch.full((t, t), torch.finfo(torch.float32).min).triu(1)[None, None]  # (1, 1, T, T), added to scores
    x = model.distilbert.embeddings(ids)
    x = model.distilbert.transformer(x, attention_mask=mask).last_hidden_state
    x = model.vocab_layer_norm(model.activation(model.vocab_transform(x)))
    return model.vocab_projector(x)


def test_distilbert_becomes_a_causal_bert_decoder(tmp_path: Path, sources) -> None:
    src = tmp_path / "distilbert"
    source = write_language_model(src, "distilbert")
    randomize(source, seed=7)
    source.save_pretrained(src)
    out = tmp_path / "m"
    result = ved("compose", sources("vit-model"), src, "-o", out)
    assert result.exit_code == 0, result.output
    assert "distilbert becomes a BERT decoder" in result.stderr
    assert "new: decoder cross-attention (2 layers), enc_to_dec_proj" in result.stderr

    ref = reference_loads_cleanly(out)  # transformers reads it as a BERT decoder
    assert type(ref.decoder) is T.BertLMHeadModel
    assert_same_logits_and_greedy(out, ref)

    # The mapping: BERT's causal self-attention path, built from the composed weights without the (new)
    # cross-attention, computes what DistilBERT's own layers compute with a causal mask.
    config = T.BertConfig(**{**ref.decoder.config.to_dict(), "add_cross_attention": False})
    bert = T.BertLMHeadModel(config).eval()
    weights = {k.removeprefix("decoder."): v for k, v in load_file(out / "model.safetensors").items()
               if k.startswith("decoder.") and "crossattention" not in k}  # fmt: skip
    missing, unexpected = bert.load_state_dict(weights, strict=False)
    assert not unexpected and set(missing) <= {"cls.predictions.decoder.weight", "cls.predictions.decoder.bias"}
    bert.tie_weights()
    ids = torch.randint(0, source.config.vocab_size, (2, 7), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = causal_distilbert_logits(source.eval(), ids)
        got = bert(input_ids=ids).logits
        bidirectional = source(input_ids=ids).logits
    assert (got - expected).abs().max() < 1e-4
    assert (got[:, :-1] - bidirectional[:, :-1]).abs().max() > 1e-2  # the mask matters: the test can tell

    # weights unchanged under their BERT names, token types zero, special tokens BERT's
    dist = load_file(src / "model.safetensors")
    saved = load_file(out / "model.safetensors")
    pairs = {
        "distilbert.embeddings.word_embeddings.weight": "bert.embeddings.word_embeddings.weight",
        "distilbert.transformer.layer.1.attention.k_lin.weight": "bert.encoder.layer.1.attention.self.key.weight",
        "distilbert.transformer.layer.0.ffn.lin2.bias": "bert.encoder.layer.0.output.dense.bias",
        "vocab_layer_norm.weight": "cls.predictions.transform.LayerNorm.weight",
        "vocab_projector.bias": "cls.predictions.bias",
    }
    for theirs, ours in pairs.items():
        assert torch.equal(saved["decoder." + ours], dist[theirs]), ours
    assert not saved["decoder.bert.embeddings.token_type_embeddings.weight"].any()
    config = json.loads((out / "config.json").read_text())
    tok = T.AutoTokenizer.from_pretrained(src)
    assert config["decoder_start_token_id"] == tok.cls_token_id and config["eos_token_id"] == tok.sep_token_id


# ------------------------------------------------------------------------------------------------------------------
# Errors: one line, exit 2, nothing written
# ------------------------------------------------------------------------------------------------------------------


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize(
    "args,fragments",
    [
        (["vitt", "bert"], ["unknown encoder preset 'vitt'", "did you mean vit", "(ENCODER)"]),
        (["vit", "gtp2"], ["unknown decoder preset 'gtp2'", "did you mean gpt2", "(DECODER)"]),
        (["bert", "vit"], ["'bert' is a decoder preset", "(ENCODER)"]),
        (["vit", "bert", "--decoder-config", "num_layers=2"], ["unknown bert config key 'num_layers'"]),
        (["vit", "bert", "--encoder-config", "hidden_size=big"], ["hidden_size takes a number", "(--encoder-config)"]),
        (["vit", "bert", "--decoder-config", "vocab_size=100"], ["vocab_size is 100", "(--decoder-config)"]),
        (["vit", "bert", "--revision-decoder", "main"], ["--revision-decoder applies to hub models"]),
        (["vit", "./no/such/model"], ["no such folder or hub model"]),
    ],
)
def test_bad_requests_are_one_line_errors(tmp_path: Path, args: list[str], fragments: list[str]) -> None:
    out = tmp_path / "m"
    assert_one_line_error(ved("compose", *args, "-o", out), *fragments)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_not_an_encoder_or_decoder(tmp_path: Path, sources) -> None:
    bert, vit = sources("bert-mlm"), sources("vit-model")
    assert_one_line_error(ved("compose", bert, "gpt2", "-o", tmp_path / "m"), "is a bert model, not an image encoder")
    assert_one_line_error(ved("compose", "vit", vit, "-o", tmp_path / "m"), "is a vit model, not a language model")
    assert_one_line_error(ved("compose", vit, "gpt2", "-o", tmp_path / "m", "--revision-encoder", "v1"),
                          "--revision-encoder only applies to hub models", "(--revision-encoder)")  # fmt: skip
    bare = tmp_path / "bare"  # a language model without tokenizer files
    T.GPT2LMHeadModel(T.GPT2Config(n_embd=16, n_layer=1, n_head=2, vocab_size=50)).save_pretrained(bare)
    assert_one_line_error(ved("compose", "vit", bare, "-o", tmp_path / "m"), "give one with --tokenizer")
    assert not (tmp_path / "m").exists()


def test_existing_output_needs_force(tmp_path: Path) -> None:
    out = tmp_path / "m"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    for force in ([], ["--force"]):  # a folder ved did not write is never replaced (tests/test_no_overwrite.py)
        assert_one_line_error(
            ved("compose", "vit", "gpt2", "-o", out, *shrink_flags("vit", "gpt2"), *force),
            "holds keep.txt, which ved did not write; ved will not replace it",
        )
        assert (out / "keep.txt").read_text() == "mine"
    (out / "keep.txt").unlink()  # now empty: used as it is
    assert ved("compose", "vit", "gpt2", "-o", out, *shrink_flags("vit", "gpt2")).exit_code == 0
    assert_one_line_error(ved("compose", "vit", "gpt2", "-o", out, *shrink_flags("vit", "gpt2")), "--force")
    result = ved("compose", "vit", "gpt2", "-o", out, *shrink_flags("vit", "gpt2"), "--force")
    assert result.exit_code == 0, result.output
    assert (out / "model.safetensors").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no temporary folder left beside it


def test_trocr_decoder_reads_the_encoder_directly_like_published_trocr(tmp_path: Path) -> None:
    """deit + trocr of different widths: cross-attention reads the encoder's width (no enc_to_dec_proj), as
    microsoft/trocr-small-* are built."""
    out = tmp_path / "model"
    result = ved("compose", "deit-small", "trocr-small", "-o", out, *shrink_flags("deit-small", "trocr-small"))
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["decoder"]["d_model"] != config["encoder"]["hidden_size"]
    assert config["decoder"]["cross_attention_hidden_size"] == config["encoder"]["hidden_size"]
    assert not any(k.startswith("enc_to_dec_proj") for k in load_file(out / "model.safetensors"))
    assert_same_logits_and_greedy(out, reference_loads_cleanly(out))


def test_decoder_config_aliases_as_transformers_reads_them(tmp_path: Path) -> None:
    """`--decoder-config num_hidden_layers=2` on GPT-2 sets n_layer, as transformers' GPT2Config(num_hidden_layers=2)
    does; the written config names the field, so transformers reads the same model."""
    shrink = [f for o in DECODER_SHRINK["gpt2"] if not o.startswith("n_layer=") for f in ("--decoder-config", o)]
    flags = [f for o in ENCODER_SHRINK["vit"] for f in ("--encoder-config", o)] + shrink
    result = ved("compose", "vit", "gpt2", "-o", tmp_path / "m", *flags, "--decoder-config", "num_hidden_layers=2")
    assert result.exit_code == 0, result.output
    decoder = json.loads((tmp_path / "m" / "config.json").read_text())["decoder"]
    assert decoder["n_layer"] == 2 and "num_hidden_layers" not in decoder
    assert reference_loads_cleanly(tmp_path / "m").decoder.config.num_hidden_layers == 2
    assert load_model(tmp_path / "m").config.decoder.num_layers == 2
