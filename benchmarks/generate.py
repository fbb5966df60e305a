"""Generation speed and memory: ved against the reference (transformers), side by side, in one run.

Builds a checkpoint with the real shapes of a published model (random weights: the hub is not reachable here),
loads it in both, checks that both produce the same tokens, and prints the timings.

    .venv/bin/python benchmarks/generate.py                       # vit-gpt2 shapes, CPU
    .venv/bin/python benchmarks/generate.py --model trocr-base --beams 1 4 --batch 8 --device cuda --dtype fp16
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import transformers as T

from vedcli.checkpoints.load import load_model, resolve_dtype

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from support.checkpoints import reference  # noqa: E402  (transformers, with its TrOCR loading bug worked around)

SHAPES = {
    # nlpconnect/vit-gpt2-image-captioning: ViT-base/16 at 224 + GPT-2 small
    "vit-gpt2": (
        dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
        ("gpt2", dict(n_embd=768, n_layer=12, n_head=12, vocab_size=50257, n_positions=1024)),
    ),
    # microsoft/trocr-base-printed: ViT-base/16 at 384 + TrOCR decoder (1024 wide, 12 layers)
    "trocr-base": (
        dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072, image_size=384),
        (
            "trocr",
            dict(
                d_model=1024,
                decoder_layers=12,
                decoder_attention_heads=16,
                decoder_ffn_dim=4096,
                vocab_size=50265,
                cross_attention_hidden_size=768,
                scale_embedding=False,
            ),
        ),
    ),
    # microsoft/trocr-small-printed: DeiT-small/16 at 384 + TrOCR decoder (256 wide, 6 layers)
    "trocr-small": (
        dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536, image_size=384),
        (
            "trocr",
            dict(
                d_model=256,
                decoder_layers=6,
                decoder_attention_heads=8,
                decoder_ffn_dim=1024,
                vocab_size=64044,
                cross_attention_hidden_size=384,
                use_learned_position_embeddings=False,
            ),
        ),
    ),
}


def write(name: str, folder: Path) -> None:
    enc_kw, (dec_kind, dec_kw) = SHAPES[name]
    enc = (T.DeiTConfig if name == "trocr-small" else T.ViTConfig)(**enc_kw)
    common = dict(is_decoder=True, add_cross_attention=True, pad_token_id=1, bos_token_id=0, eos_token_id=2)
    dec = T.GPT2Config(**dec_kw, **common) if dec_kind == "gpt2" else T.TrOCRConfig(**dec_kw, **common)
    cfg = T.VisionEncoderDecoderConfig.from_encoder_decoder_configs(enc, dec)
    cfg.decoder_start_token_id, cfg.pad_token_id, cfg.eos_token_id = 2, 1, 2
    torch.manual_seed(0)
    T.VisionEncoderDecoderModel(cfg).save_pretrained(folder)


def timed(fn, repeats: int, device: torch.device) -> tuple[float, torch.Tensor]:
    """Median seconds of `repeats` runs after one warm-up, and the last result."""
    out = fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def peak_memory(fn, device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    fn()
    return torch.cuda.max_memory_allocated() / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=sorted(SHAPES), default="vit-gpt2")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--beams", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--new-tokens", type=int, default=16, help="tokens generated per image (eos is never chosen)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="fp32")
    args = ap.parse_args()

    device, dtype = torch.device(args.device), resolve_dtype(args.dtype)
    with tempfile.TemporaryDirectory() as tmp:
        write(args.model, Path(tmp))
        ref = reference(tmp, dtype=dtype).to(device)
        ours = load_model(tmp, device=device, dtype=dtype)
    size = ours.config.encoder.image_size
    pixels = torch.randn(args.batch, 3, *size, generator=torch.Generator().manual_seed(0)).to(device, dtype)
    fixed = dict(max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens)

    print(
        f"{args.model}  batch {args.batch}  {args.new_tokens} new tokens  {device.type} {args.dtype}  "
        f"torch {torch.__version__}  transformers {T.__version__}  threads {torch.get_num_threads()}"
    )
    print(
        f"{'beams':>5}  {'reference ms/img':>16}  {'ved ms/img':>10}  {'speed-up':>8}  {'same tokens':>11}"
        + ("  reference MiB  ved MiB" if device.type == "cuda" else "")
    )
    for beams in args.beams:
        with torch.inference_mode():
            t_ref, a = timed(lambda beams=beams: ref.generate(pixels, num_beams=beams, **fixed), args.repeats, device)
            t_ved, b = timed(lambda beams=beams: ours.generate(pixels, num_beams=beams, **fixed), args.repeats, device)
            line = (
                f"{beams:>5}  {1000 * t_ref / args.batch:>16.1f}  {1000 * t_ved / args.batch:>10.1f}  "
                f"{t_ref / t_ved:>7.2f}x  {str(torch.equal(a.cpu(), b.cpu())):>11}"
            )
            if device.type == "cuda":
                m_ref = peak_memory(lambda beams=beams: ref.generate(pixels, num_beams=beams, **fixed), device)
                m_ved = peak_memory(lambda beams=beams: ours.generate(pixels, num_beams=beams, **fixed), device)
                line += f"  {m_ref:>13.0f}  {m_ved:>7.0f}"
        print(line, flush=True)
        gc.collect()


if __name__ == "__main__":
    main()
