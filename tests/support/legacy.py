"""Checkpoints as transformers 4.x wrote them: a transformers 5 folder rewritten into the 4.x layout."""

from __future__ import annotations

import json

V4_COMMON = dict(
    return_dict=True,
    output_hidden_states=False,
    output_attentions=False,
    torchscript=False,
    torch_dtype=None,
    use_bfloat16=False,
    tf_legacy_loss=False,
    pruned_heads={},
    chunk_size_feed_forward=0,
    is_encoder_decoder=False,
    cross_attention_hidden_size=None,
    tie_encoder_decoder=False,
    max_length=20,
    min_length=0,
    do_sample=False,
    early_stopping=False,
    num_beams=1,
    num_beam_groups=1,
    diversity_penalty=0.0,
    temperature=1.0,
    top_k=50,
    top_p=1.0,
    typical_p=1.0,
    repetition_penalty=1.0,
    length_penalty=1.0,
    no_repeat_ngram_size=0,
    encoder_no_repeat_ngram_size=0,
    bad_words_ids=None,
    num_return_sequences=1,
    output_scores=False,
    return_dict_in_generate=False,
    forced_bos_token_id=None,
    forced_eos_token_id=None,
    remove_invalid_values=False,
    exponential_decay_length_penalty=None,
    suppress_tokens=None,
    begin_suppress_tokens=None,
    finetuning_task=None,
    id2label={"0": "LABEL_0", "1": "LABEL_1"},
    label2id={"LABEL_0": 0, "LABEL_1": 1},
    tokenizer_class=None,
    prefix=None,
    sep_token_id=None,
    task_specific_params=None,
    problem_type=None,
    _name_or_path="",
)


def as_v4(folder, top_level_generation: dict) -> None:
    """Rewrite a transformers 5 checkpoint folder into the 4.x layout."""
    path = folder / "config.json"
    cfg = json.loads(path.read_text())
    cross = cfg["decoder"].get("cross_attention_hidden_size")
    for side in ("encoder", "decoder"):
        cfg[side] = {**V4_COMMON, **cfg[side]}
    cfg["decoder"]["cross_attention_hidden_size"] = cross
    cfg.pop("dtype", None)
    cfg.update(torch_dtype="float32", transformers_version="4.36.2", **top_level_generation)
    path.write_text(json.dumps(cfg, indent=2))
    (folder / "generation_config.json").unlink()
