"""checkpoint.read_json / load_state_dict against checkpoints that transformers writes (and reads back)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from support.checkpoints import write_bin
from vedcli.checkpoints.files import load_state_dict, read_json
from vedcli.errors import ModelError

transformers = pytest.importorskip("transformers")
from transformers.core_model_loading import revert_weight_conversion  # noqa: E402
from transformers.modeling_utils import remove_tied_weights_from_state_dict  # noqa: E402


@pytest.fixture(scope="module")
def model():
    """A tiny random ViT + GPT-2 VisionEncoderDecoderModel (sizes unlike any default)."""
    enc = transformers.ViTConfig(
        hidden_size=12, num_hidden_layers=1, num_attention_heads=2, intermediate_size=20, image_size=8, patch_size=4
    )
    dec = transformers.GPT2Config(
        n_embd=12,
        n_layer=2,
        n_head=3,
        vocab_size=37,
        n_positions=11,
        add_cross_attention=True,
        is_decoder=True,
        bos_token_id=1,
        eos_token_id=2,
    )
    config = transformers.VisionEncoderDecoderConfig.from_encoder_decoder_configs(enc, dec)
    torch.manual_seed(0)
    return transformers.VisionEncoderDecoderModel(config).eval()


@pytest.fixture(scope="module")
def reference(model) -> dict[str, torch.Tensor]:
    """The tensors as transformers serializes them: tied copies dropped, checkpoint (hub) key names."""
    state = remove_tied_weights_from_state_dict(model.state_dict(), model)
    return {key: value.detach().clone() for key, value in revert_weight_conversion(model, state).items()}


def _assert_same(loaded: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> None:
    assert sorted(loaded) == sorted(reference)
    for key, tensor in reference.items():
        assert loaded[key].dtype == tensor.dtype, key
        assert loaded[key].device.type == "cpu", key
        assert torch.equal(loaded[key], tensor), key


def _transformers_reads_back(model, folder: Path) -> None:
    """The reference loader finds the same weights in `folder` (so the layout is the one it expects)."""
    model.config.save_pretrained(folder)
    again = transformers.VisionEncoderDecoderModel.from_pretrained(folder).eval()
    for key, tensor in model.state_dict().items():
        assert torch.equal(again.state_dict()[key], tensor), key


def test_single_safetensors(model, reference, tmp_path: Path) -> None:
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    _assert_same(load_state_dict(tmp_path), reference)


def test_sharded_safetensors(model, reference, tmp_path: Path) -> None:
    model.save_pretrained(tmp_path, max_shard_size="4KB")
    shards = sorted(p.name for p in tmp_path.glob("model-*.safetensors"))
    assert len(shards) > 2 and (tmp_path / "model.safetensors.index.json").is_file()
    _assert_same(load_state_dict(tmp_path), reference)


@pytest.mark.parametrize("shards", [1, 3])
def test_bin_through_the_weights_only_unpickler(model, reference, tmp_path: Path, shards: int) -> None:
    write_bin(tmp_path, reference, shards)
    _transformers_reads_back(model, tmp_path)
    _assert_same(load_state_dict(tmp_path), reference)


def test_safetensors_preferred_over_bin(model, reference, tmp_path: Path) -> None:
    model.save_pretrained(tmp_path)
    torch.save({"something.else": torch.zeros(1)}, tmp_path / "pytorch_model.bin")
    _assert_same(load_state_dict(tmp_path), reference)


class Payload:
    """Unpickling this would run code."""

    def __reduce__(self):
        return (os.system, ("echo unpickled >&2",))


def test_pickle_with_code_is_refused(tmp_path: Path) -> None:
    torch.save({"weight": torch.ones(2), "payload": Payload()}, tmp_path / "pytorch_model.bin")
    with pytest.raises(ModelError) as info:
        load_state_dict(tmp_path)
    assert info.value.message.startswith("refusing to unpickle")
    assert "system" in info.value.message  # names what it would have called
    assert info.value.where == str(tmp_path / "pytorch_model.bin")


def test_bin_that_is_not_a_state_dict(tmp_path: Path) -> None:
    torch.save([torch.ones(2)], tmp_path / "pytorch_model.bin")
    with pytest.raises(ModelError, match="dict of named tensors"):
        load_state_dict(tmp_path)


def test_no_weights(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelError) as info:
        load_state_dict(tmp_path)
    assert "no weights found" in info.value.message and info.value.where == str(tmp_path)


def test_missing_shard_names_the_shard(model, tmp_path: Path) -> None:
    model.save_pretrained(tmp_path, max_shard_size="4KB")
    gone = sorted(tmp_path.glob("model-*.safetensors"))[1]
    gone.unlink()
    with pytest.raises(ModelError) as info:
        load_state_dict(tmp_path)
    assert (info.value.message, info.value.where) == ("missing shard", str(gone))


@pytest.mark.parametrize(
    "name, data",
    [
        ("model.safetensors", b"\x08\x00\x00\x00\x00\x00\x00\x00{bad"),
        ("model.safetensors", b""),
        ("pytorch_model.bin", b"hello, not a zip"),
        ("pytorch_model.bin", b""),
    ],
)
def test_corrupt_weights_name_the_file(tmp_path: Path, name: str, data: bytes) -> None:
    (tmp_path / name).write_bytes(data)
    with pytest.raises(ModelError) as info:
        load_state_dict(tmp_path)
    assert info.value.where == str(tmp_path / name)
    assert "\n" not in str(info.value)


def test_truncated_weights_name_the_file(model, tmp_path: Path) -> None:
    model.save_pretrained(tmp_path)
    path = tmp_path / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ModelError, match="corrupt safetensors") as info:
        load_state_dict(tmp_path)
    assert info.value.where == str(path)


def test_read_json(tmp_path: Path) -> None:
    good = tmp_path / "config.json"
    good.write_text('{"a": [1, 2]}')
    assert read_json(good) == {"a": [1, 2]}
    for text, message in [("{oops", "invalid JSON"), ("[1]", "expected a JSON object"), (None, "missing file")]:
        path = tmp_path / "x.json"
        path.unlink(missing_ok=True)
        if text is not None:
            path.write_text(text)
        with pytest.raises(ModelError) as info:
            read_json(path)
        assert info.value.message.startswith(message) and info.value.where == str(path)


def _generation_config(folder: Path) -> None:
    from vedcli.generation.defaults import GenerationConfig

    GenerationConfig.from_folder(folder)


def _image_processor(folder: Path) -> None:
    from vedcli.processing.image import load_image_processor

    load_image_processor(folder)


def _tokenizer(folder: Path) -> None:
    from vedcli.processing.tokenizer import load_tokenizer

    load_tokenizer(folder)


@pytest.mark.parametrize(
    "file, read",
    [
        ("generation_config.json", _generation_config),
        ("preprocessor_config.json", _image_processor),
        ("processor_config.json", _image_processor),
        ("tokenizer.json", _tokenizer),
        ("tokenizer_config.json", _tokenizer),
        ("added_tokens.json", _tokenizer),
        ("config.json", read_json),
    ],
)
@pytest.mark.parametrize("text, message", [("{oops", "invalid JSON: "), ("[1, 2]", "expected a JSON object")])
def test_every_json_file_is_read_by_one_reader(file, read, text, message, tmp_path: Path) -> None:
    """Whatever reads it (generation defaults, image processor, tokenizer, model config), a broken JSON file is the
    same one-line ModelError naming the file."""
    if read is _tokenizer:
        from support.tiny_tokenizers import write_gpt2_bpe

        write_gpt2_bpe(tmp_path)  # the other files of a tokenizer, good
    path = tmp_path / file
    path.write_text(text)
    with pytest.raises(ModelError) as info:
        read(path if read is read_json else tmp_path)
    assert info.value.message.startswith(message) and info.value.where == str(path)
    assert "\n" not in str(info.value)
