"""The `ved` command: thin commands over the library, and the one place errors become messages and exit codes.

    ved caption photo.jpg              ved ocr scans/ --format jsonl --output lines.jsonl
    find . -name '*.png' | ved caption - --beams 4 --format csv

Exit codes: 0 all inputs done; 1 some inputs could not be read (their rows say why, the rest are done);
2 bad model, option or command line (or out of memory); 70 ved crashed: an unexpected error, a bug to report
(EX_SOFTWARE); 130 interrupted, at any moment (what was written stays written); 141 the reader of the output went
away (`ved ... | head`: 128 + SIGPIPE, as a shell reports any tool that a closed pipe stops; nothing is printed).
Errors are one line, `Error: <what> (<where>)`, on stderr; VED_DEBUG=1 shows the traceback instead.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, TextIO

from . import interrupts

# Ctrl-C from the moment the `ved` program starts, typer's import below included (vedcli/interrupts.py); when the
# module is imported by other code, main() does this instead.
if (
    Path(sys.argv[0]).name == "ved"
    or getattr(getattr(sys.modules.get("__main__"), "__spec__", None), "name", None) == "vedcli.__main__"
):
    interrupts.starting()

import typer  # noqa: E402
from typer.core import TyperCommand  # noqa: E402

from .commands.caption import RunSettings, caption_inputs  # noqa: E402
from .errors import OptionError, VedError, options_named  # noqa: E402
from .generation.options import DecodingOptions  # noqa: E402  (no torch)
from .terminal import is_terminal  # noqa: E402

# Modules that import torch are imported where a command needs them, so that `ved --help` starts at once.

CAPTION_MODEL = "nlpconnect/vit-gpt2-image-captioning"
OCR_MODEL = "printed"  # the built-in reader shipped in the package (vedcli/checkpoints/builtin.py)
EXIT_OK, EXIT_BAD_INPUT, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_CRASH = 70  # an unexpected exception: a bug in ved (sysexits.h EX_SOFTWARE)
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: the output's reader went away

# The library names options (errors.option("top_p")); the CLI shows each as the flag that sets it. Most flags are
# the option's name with dashes; these are not, or are not ved's own.
_FLAG_OF = {
    "num_beams": "--beams",
    "do_sample": "--sample",
    "encoder_overrides": "--encoder-config",
    "decoder_overrides": "--decoder-config",
    "nproc_per_node": "--nproc_per_node",  # torchrun's
}
_FLAG_LIKE_NAME = (
    # caption / ocr, and the generation options
    *("model", "revision", "max_new_tokens", "min_new_tokens", "temperature", "top_k", "top_p", "seed"),
    *("no_repeat_ngram_size", "repetition_penalty", "length_penalty", "num_return_sequences", "batch_size"),
    *("max_pixels", "device", "dtype", "quantize", "format", "output", "layout", "debug_layout"),
    *("output_dir", "retry_failed", "fail_fast"),  # batch runs (resume, force: below)
    # convert, compose
    *("max_shard_size", "force", "tokenizer", "revision_encoder", "revision_decoder"),
    # train
    *("data", "val_data", "val_split", "epochs", "max_steps", "grad_accum", "lr", "warmup_steps", "schedule"),
    *("weight_decay", "clip_norm", "label_smoothing", "ctc_weight", "freeze_encoder", "group_by_length", "workers"),
    *("ema_decay", "eval_every", "save_every", "log_every", "metric", "samples", "max_target_length", "skip_bad"),
    *("resume",),
)
# Options no flag of ved's sets: only a checkpoint's generation_config.json does, so a message names the field there.
_SET_BY_CHECKPOINT = ("early_stopping", "bad_words_ids")
FLAGS: dict[str, str] = {
    **{name: "--" + name.replace("_", "-") for name in _FLAG_LIKE_NAME},
    **_FLAG_OF,
    **{name: f"generation_config.json {name}" for name in _SET_BY_CHECKPOINT},
}


def flag_of(name: str) -> str:
    """How a message names option `name` to a command-line user: its flag (an option no flag sets: its name)."""
    return FLAGS.get(name, name)


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class DType(str, Enum):
    fp32 = "fp32"
    fp16 = "fp16"
    bf16 = "bf16"


class Format(str, Enum):
    text = "text"
    jsonl = "jsonl"
    csv = "csv"
    tsv = "tsv"
    hocr = "hocr"
    alto = "alto"


class Layout(str, Enum):
    auto = "auto"
    page = "page"
    line = "line"


# --output's extension -> the format written when --format is not given (any other extension: text)
FORMAT_OF_EXTENSION = {
    ".jsonl": Format.jsonl,
    ".csv": Format.csv,
    ".tsv": Format.tsv,
    ".txt": Format.text,
    ".hocr": Format.hocr,
}


def _output_format(given: Format | None, output: str | None) -> Format:
    """--format when given, else the one the --output file's extension names, else text."""
    if given is not None:
        return given
    if output in (None, "-"):
        return Format.text
    return FORMAT_OF_EXTENSION.get(Path(output).suffix.lower(), Format.text)


class _Command(TyperCommand):
    """Plain help, as click writes it: `--beams INTEGER`, not typer's `<int>` labels (and none on an argument,
    whose name says what it is)."""

    TYPES = {"<int>": "INTEGER", "<float>": "FLOAT", "<str>": "TEXT"}

    def format_options(self, ctx: Any, formatter: Any) -> None:
        sections: dict[str, list[tuple[str, str]]] = {"argument": [], "option": []}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is not None and param.param_type_name in sections:
                name, text = record
                sections[param.param_type_name].append((self._clean(name, param.param_type_name), text))
        for title, kind in (("Arguments", "argument"), ("Options", "option")):
            if sections[kind]:
                with formatter.section(title):
                    formatter.write_dl(sections[kind])

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return [re.sub(r"^\{(.*)\}", r"\1", piece) for piece in super().collect_usage_pieces(ctx)]  # {MODEL}: MODEL

    @classmethod
    def _clean(cls, name: str, kind: str) -> str:
        match = re.fullmatch(r"(.*) (<[^<>]*>)", name)
        if match is None:
            return name
        if kind == "argument":
            return match.group(1)
        label = match.group(2)
        return f"{match.group(1)} {cls.TYPES.get(label, '[' + label[1:-1] + ']')}"


app = typer.Typer(
    name="ved",
    help="Image captioning and OCR with vision encoder-decoder models, in plain PyTorch.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: no boxes, no type labels (see _Command)
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _show_version(value: bool) -> None:
    if value:
        from . import __version__

        typer.echo(f"ved {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: Annotated[
        bool, typer.Option("--version", help="Show the version and exit.", callback=_show_version, is_eager=True)
    ] = False,
) -> None:
    """Image captioning and OCR with vision encoder-decoder models, in plain PyTorch."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None  # ved's own limit (--max-pixels) replaces PIL's warning and error
    ctx.call_on_close(interrupts.started)  # Ctrl-C is a KeyboardInterrupt again once the command is done


# The options both commands share, declared once.
Inputs = Annotated[
    list[str] | None,
    typer.Argument(
        metavar="INPUT",
        help="Image files, folders (searched recursively), or - to read paths from stdin.",
        show_default=False,
    ),
]
Revision = Annotated[str | None, typer.Option("--revision", metavar="REV", help="Hub branch, tag or commit.")]
Beams = Annotated[int | None, typer.Option("--beams", help="Beam search width (1: greedy).")]
MaxNew = Annotated[int | None, typer.Option("--max-new-tokens", help="Most tokens to generate.")]
MinNew = Annotated[int | None, typer.Option("--min-new-tokens", help="Fewest tokens to generate.")]
Sample = Annotated[
    bool | None,
    typer.Option("--sample/--no-sample", help="Sample instead of greedy / beam search.", show_default=False),
]
Temperature = Annotated[float | None, typer.Option("--temperature", help="Sampling temperature (needs --sample).")]
TopK = Annotated[
    int | None, typer.Option("--top-k", help="Sample from the k likeliest tokens (needs --sample; 0: all).")
]
TopP = Annotated[float | None, typer.Option("--top-p", help="Nucleus sampling mass (needs --sample).")]
Seed = Annotated[int | None, typer.Option("--seed", help="Random seed (needs --sample).")]
NoRepeat = Annotated[int | None, typer.Option("--no-repeat-ngram-size", help="Never repeat an n-gram of this size.")]
RepPenalty = Annotated[float | None, typer.Option("--repetition-penalty", help="Penalty for tokens already generated.")]
LenPenalty = Annotated[
    float | None, typer.Option("--length-penalty", help="Beam score length exponent (needs --beams).")
]
NumReturn = Annotated[int | None, typer.Option("--num-return-sequences", help="Results per image.")]
BatchSize = Annotated[int, typer.Option("--batch-size", help="Images per forward pass.")]
MaxPixels = Annotated[
    str | None,
    typer.Option(
        "--max-pixels",
        metavar="N",
        show_default=False,
        help="Refuse images of more pixels, e.g. 250M or 250000000 (default: 100M; 0: no limit).",
    ),
]
DeviceOpt = Annotated[Device, typer.Option("--device", help="Where to run.")]


class RunDType(str, Enum):  # caption / ocr: the stored types, or the fastest this machine computes natively
    auto = "auto"
    fp32 = "fp32"
    fp16 = "fp16"
    bf16 = "bf16"


class Quantize(str, Enum):
    int8 = "int8"


DTypeOpt = Annotated[
    RunDType | None,
    typer.Option(
        "--dtype",
        show_default=False,
        help="Weights and compute type (default: fp32, identical to transformers; auto: bf16 where the CPU or GPU "
        "computes it natively, fp16 on other GPUs, else fp32).",
    ),
]
QuantizeOpt = Annotated[
    Quantize | None,
    typer.Option("--quantize", show_default=False, help="int8: dynamic int8 linear layers (CPU; faster, approximate)."),
]
FormatOpt = Annotated[
    Format | None,
    typer.Option(
        "--format",
        show_default=False,
        help="Output format (default: from the --output file's extension, .jsonl .csv .tsv .hocr; else text); hocr and"
        " alto: ved ocr pages only.",
    ),
]
Output = Annotated[
    str | None, typer.Option("--output", "-o", metavar="FILE", help="Write results to this file instead of stdout.")
]
OutputDir = Annotated[
    str | None,
    typer.Option("--output-dir", metavar="DIR", help="Write one file per input into DIR (NAME.txt, NAME.jsonl, ...)."),
]
Resume = Annotated[
    bool, typer.Option("--resume", help="Skip the inputs the output holds already and add the rest (jsonl, csv, tsv).")
]
Force = Annotated[bool, typer.Option("--force", help="Write an existing output anew.")]
RetryFailed = Annotated[
    bool, typer.Option("--retry-failed", help="With --resume: read again the inputs whose record is an error.")
]
FailFast = Annotated[bool, typer.Option("--fail-fast", help="Stop at the first input that cannot be read.")]


def _generation_command(default_model: str, summary: str, ocr: bool = False):
    """`ved caption` and `ved ocr` take the same flags and differ in the default model; ocr has --layout too."""
    layout_help = "Find the text lines of pages (page), read each image as one line (line), or decide per image."

    def command(
        inputs: Inputs = None,
        model: Annotated[str, typer.Option("--model", metavar="MODEL", help="Hub id or local folder.")] = default_model,
        revision: Revision = None,
        beams: Beams = None,
        max_new_tokens: MaxNew = None,
        min_new_tokens: MinNew = None,
        sample: Sample = None,
        temperature: Temperature = None,
        top_k: TopK = None,
        top_p: TopP = None,
        seed: Seed = None,
        no_repeat_ngram_size: NoRepeat = None,
        repetition_penalty: RepPenalty = None,
        length_penalty: LenPenalty = None,
        num_return_sequences: NumReturn = None,
        batch_size: BatchSize = 8,
        max_pixels: MaxPixels = None,
        device: DeviceOpt = Device.auto,
        dtype: DTypeOpt = None,
        quantize: QuantizeOpt = None,
        format: FormatOpt = None,
        output: Output = None,
        output_dir: OutputDir = None,
        resume: Resume = False,
        force: Force = False,
        retry_failed: RetryFailed = False,
        fail_fast: FailFast = False,
        layout: Layout | None = None,  # annotated below: hidden from ved caption
        debug_layout: str | None = None,
    ) -> None:
        options = DecodingOptions(
            max_new_tokens=max_new_tokens,
            min_new_tokens=min_new_tokens,
            num_beams=beams,
            do_sample=sample,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            seed=seed,
            no_repeat_ngram_size=no_repeat_ngram_size,
            repetition_penalty=repetition_penalty,
            length_penalty=length_penalty,
            num_return_sequences=num_return_sequences,
        )

        def work() -> int:
            if not ocr and (layout is not None or debug_layout is not None):
                flag = "--layout" if layout is not None else "--debug-layout"
                raise OptionError(f"{flag} is for ved ocr", where=flag)
            settings = RunSettings(
                inputs=list(inputs or []),
                model=model,
                revision=revision,
                device=device.value,
                dtype=dtype.value if dtype is not None else None,
                quantize=quantize.value if quantize is not None else None,
                batch_size=batch_size,
                format=_output_format(format, output).value,
                output=output,
                options=options,
                max_pixels=_pixel_count(max_pixels),
                layout=(layout or Layout.auto).value if ocr else None,
                debug_layout=debug_layout,
                output_dir=output_dir,
                resume=resume,
                force=force,
                retry_failed=retry_failed,
                fail_fast=fail_fast,
            )
            return run(settings, sys.stdin, sys.stdout, sys.stderr)

        _exit_with(_quiet_pipe(work))  # the run says when Ctrl-C may stop it cleanly: once the model has loaded

    command.__doc__ = summary
    command.__annotations__["layout"] = Annotated[
        Layout | None,
        typer.Option("--layout", help=layout_help + " [default: auto]", show_default=False, hidden=not ocr),
    ]
    command.__annotations__["debug_layout"] = Annotated[
        str | None,
        typer.Option(
            "--debug-layout",
            metavar="PATH",
            help="Draw the lines found on each page to PATH (a .png; a folder for several inputs).",
            hidden=not ocr,
        ),
    ]
    return command


def _pixel_count(text: str | None) -> int | None:
    """--max-pixels: a whole number, or one with a K / M / G suffix (thousands, millions, billions); None: default."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)\s*", text)
    if match is None:
        raise OptionError(
            f"--max-pixels must be a number of pixels such as 250M or 250000000, not {text!r}", where="--max-pixels"
        )
    scale = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}[match.group(2).lower()]
    return int(float(match.group(1)) * scale)


app.command("caption", cls=_Command)(_generation_command(CAPTION_MODEL, "Describe images in words."))
app.command("ocr", cls=_Command)(
    _generation_command(
        OCR_MODEL, "Read the text in images: pages (their lines found and read in order) or lines.", True
    )
)


class InfoFormat(str, Enum):
    text = "text"
    json = "json"


@app.command("convert", cls=_Command)
def convert(
    source: Annotated[
        str, typer.Argument(metavar="SRC", help="Hub id or folder, in any layout ved loads.", show_default=False)
    ],
    output: Annotated[
        str, typer.Option("--output", "-o", metavar="DST", help="The folder to write.", show_default=False)
    ],
    revision: Revision = None,
    dtype: Annotated[
        DType | None, typer.Option("--dtype", help="Stored weights type (default: the source's).", show_default=False)
    ] = None,
    max_shard_size: Annotated[
        str | None, typer.Option("--max-shard-size", help="Split weights into files of at most this size, e.g. 500MB.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace DST if it exists.")] = False,
) -> None:
    """Turn a checkpoint into a self-contained safetensors folder that ved and transformers load quickly."""
    from .checkpoints.save import parse_size
    from .commands.convert import convert as run_convert
    from .commands.convert import report

    def work() -> int:
        done = run_convert(
            source,
            output,
            revision=revision,
            dtype=dtype.value if dtype else None,
            max_shard_size=parse_size(max_shard_size),
            force=force,
        )
        print(report(done))
        return EXIT_OK

    interrupts.started()  # imports done: from here Ctrl-C stops the work cleanly
    _exit_with(_quiet_pipe(work))


@app.command("compose", cls=_Command)
def compose(
    encoder: Annotated[
        str,
        typer.Argument(
            metavar="ENCODER",
            help="Encoder preset (vit, deit-small, swin, ...) or pretrained vision model (hub id or folder).",
            show_default=False,
        ),
    ],
    decoder: Annotated[
        str,
        typer.Argument(
            metavar="DECODER",
            help="Decoder preset (bert, gpt2, trocr, ...) or pretrained language model (hub id or folder).",
            show_default=False,
        ),
    ],
    output: Annotated[
        str, typer.Option("--output", "-o", metavar="DIR", help="The folder to write.", show_default=False)
    ],
    encoder_config: Annotated[
        list[str] | None,
        typer.Option(
            "--encoder-config",
            metavar="KEY=VALUE",
            help="Change an encoder config field (repeatable).",
            show_default=False,
        ),
    ] = None,
    decoder_config: Annotated[
        list[str] | None,
        typer.Option(
            "--decoder-config",
            metavar="KEY=VALUE",
            help="Change a decoder config field (repeatable).",
            show_default=False,
        ),
    ] = None,
    tokenizer: Annotated[
        str | None,
        typer.Option(
            "--tokenizer",
            metavar="SRC",
            help="Take the tokenizer from this hub id or folder (its size sets a preset's vocab_size).",
        ),
    ] = None,
    revision_encoder: Annotated[
        str | None, typer.Option("--revision-encoder", metavar="REV", help="Hub revision of ENCODER.")
    ] = None,
    revision_decoder: Annotated[
        str | None, typer.Option("--revision-decoder", metavar="REV", help="Hub revision of DECODER.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed for the new weights.")] = 0,
    dtype: Annotated[
        DType | None,
        typer.Option(
            "--dtype", help="Stored weights type (default: the pretrained parts', else fp32).", show_default=False
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace DIR if it exists.")] = False,
) -> None:
    """Build a new image-to-text model from a vision encoder and a language model (presets or pretrained)."""
    from .commands.compose import ComposeOptions, report
    from .commands.compose import compose as run_compose

    def work() -> int:
        done = run_compose(
            ComposeOptions(
                encoder,
                decoder,
                output,
                list(encoder_config or []),
                list(decoder_config or []),
                tokenizer,
                revision_encoder,
                revision_decoder,
                seed,
                dtype.value if dtype else None,
                force,
            )
        )
        report(done, sys.stdout, sys.stderr)
        return EXIT_OK

    interrupts.started()  # imports done: from here Ctrl-C stops the work cleanly
    _exit_with(_quiet_pipe(work))


class Schedule(str, Enum):
    linear = "linear"
    cosine = "cosine"
    constant = "constant"


class Metric(str, Enum):
    loss = "loss"
    cer = "cer"
    wer = "wer"
    bleu = "bleu"


def _opt(flag: str, help: str, metavar: str | None = None):
    """A `ved train` option: None when not given, so that --resume can tell given flags from saved settings."""
    return typer.Option(flag, help=help, metavar=metavar, show_default=False)


@app.command("train", cls=_Command)
def train(
    ctx: typer.Context,
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            metavar="RUN",
            show_default=False,
            help="Run folder: best/, last/, metrics.jsonl, train_args.json.",
        ),
    ],
    model: Annotated[
        str | None, _opt("--model", "Checkpoint to fine-tune: hub id or folder (a ved compose output too).", "MODEL")
    ] = None,
    data: Annotated[
        str | None,
        _opt(
            "--data",
            "Training data: a folder with metadata.jsonl or metadata.csv "
            "(file_name, text), or a list file of path<TAB>text lines.",
            "DATA",
        ),
    ] = None,
    val_data: Annotated[str | None, _opt("--val-data", "Validation data, in the same layouts.", "DATA")] = None,
    val_split: Annotated[
        float | None, _opt("--val-split", "Hold out this fraction of --data for validation instead.")
    ] = None,
    epochs: Annotated[int | None, _opt("--epochs", "Passes over the data (default: 3).")] = None,
    max_steps: Annotated[int | None, _opt("--max-steps", "Optimizer updates in all; overrides --epochs.")] = None,
    batch_size: Annotated[
        int | None,
        _opt(
            "--batch-size",
            "Examples per batch in each process (default: 8); an update sees batch-size x processes x grad-accum.",
        ),
    ] = None,
    grad_accum: Annotated[int | None, _opt("--grad-accum", "Batches per update (default: 1).")] = None,
    lr: Annotated[float | None, _opt("--lr", "Peak learning rate (default: 5e-5).")] = None,
    warmup_steps: Annotated[int | None, _opt("--warmup-steps", "Steps of linear warm-up from 0 (default: 0).")] = None,
    schedule: Annotated[Schedule | None, _opt("--schedule", "Learning rate after warm-up (default: linear).")] = None,
    weight_decay: Annotated[
        float | None, _opt("--weight-decay", "AdamW weight decay, not on biases and norms (default: 0).")
    ] = None,
    clip_norm: Annotated[
        float | None, _opt("--clip-norm", "Clip the gradient norm to this; 0: never (default: 1).")
    ] = None,
    label_smoothing: Annotated[float | None, _opt("--label-smoothing", "Label smoothing (default: 0).")] = None,
    ctc_weight: Annotated[
        float | None,
        _opt(
            "--ctc-weight",
            "Add this times a CTC loss on the encoder's output, "
            "from a training-only head (e.g. 0.3; default: 0, none).",
        ),
    ] = None,
    freeze_encoder: Annotated[bool, typer.Option("--freeze-encoder", help="Train the decoder only.")] = False,
    ema_decay: Annotated[
        float | None,
        _opt(
            "--ema-decay",
            "Evaluate, and keep as RUN/best, a moving average of the weights with this decay (e.g. 0.999; "
            "default: 0, none).",
        ),
    ] = None,
    group_by_length: Annotated[
        bool | None,
        typer.Option(
            "--group-by-length/--no-group-by-length",
            help="Batch targets of similar lengths together: less padding, faster steps (default: off).",
            show_default=False,
        ),
    ] = None,
    dtype: Annotated[
        DType | None,
        _opt(
            "--dtype", "fp32, or mixed precision: bf16 (CPU or CUDA), fp16 (CUDA); weights stay fp32 (default: fp32)."
        ),
    ] = None,
    device: Annotated[Device | None, _opt("--device", "Where to train (default: auto).")] = None,
    seed: Annotated[int | None, _opt("--seed", "Seed for data order, dropout and --val-split (default: 42).")] = None,
    workers: Annotated[int | None, _opt("--workers", "Data loading processes (default: 0).")] = None,
    eval_every: Annotated[int | None, _opt("--eval-every", "Evaluate every N steps (default: each epoch).")] = None,
    save_every: Annotated[int | None, _opt("--save-every", "Also save RUN/last every N steps.")] = None,
    log_every: Annotated[int | None, _opt("--log-every", "Log the training loss every N steps (default: 10).")] = None,
    metric: Annotated[Metric | None, _opt("--metric", "What makes RUN/best best (default: loss).")] = None,
    samples: Annotated[
        int | None, _opt("--samples", "Validation predictions shown per evaluation (default: 3).")
    ] = None,
    max_target_length: Annotated[
        int | None, _opt("--max-target-length", "Cut targets to this many tokens (default: the decoder's positions).")
    ] = None,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Train on the usable rows when some are bad.")] = False,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue RUN from RUN/last with its saved settings.")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Start over if RUN exists.")] = False,
    revision: Revision = None,
) -> None:
    """Fine-tune a model on (image, text) pairs; the same command under torchrun trains on several processes."""
    # the flags given, by parameter name; the rest come from defaults or, resuming, from the run's saved settings
    given = {
        name: value.value if isinstance(value, Enum) else value
        for name, value in ctx.params.items()
        if name not in ("output", "resume", "force")
        and value is not None
        and (value is not False or name == "group_by_length")  # the one flag with an off switch, for --resume
    }
    from .commands.train import train as run_train

    def work() -> int:
        finished = run_train(output, given, resume=resume, force=force, stdout=sys.stdout, stderr=sys.stderr)
        return EXIT_OK if finished else EXIT_INTERRUPTED

    interrupts.started()  # imports done: from here Ctrl-C stops the work cleanly
    _exit_with(_quiet_pipe(work))


@app.command("info", cls=_Command)
def info(
    model: Annotated[str, typer.Argument(metavar="MODEL", help="Hub id or local folder.", show_default=False)],
    revision: Revision = None,
    format: Annotated[InfoFormat, typer.Option("--format", help="Output format.")] = InfoFormat.text,
) -> None:
    """Describe a checkpoint: architecture, sizes, tokens, preprocessing, and what loading it will do."""
    from .commands.info import describe, render

    def work() -> int:
        report = describe(model, revision)
        print(json.dumps(report, indent=2) if format is InfoFormat.json else render(report))
        return EXIT_OK

    interrupts.started()  # imports done: from here Ctrl-C stops the work cleanly
    _exit_with(_quiet_pipe(work))


def _exit_with(work: Callable[[], int]) -> None:
    """Run a command's work; VedErrors become one `Error:` line and their exit code, VedWarnings one `Warning:`
    line, and any other exception (a bug) a line asking for a report with exit code 70 (tracebacks with
    VED_DEBUG=1)."""
    import warnings

    from .commands.output import printable
    from .errors import VedWarning

    debug = os.environ.get("VED_DEBUG") == "1"
    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, VedWarning) and not debug:
            print(f"Warning: {printable(str(message))}", file=sys.stderr)
        else:
            shown(message, category, filename, lineno, file, line)

    _quiet_hub_downloads(sys.stderr)
    with warnings.catch_warnings(), options_named(flag_of):
        warnings.showwarning = show
        try:
            code = work()
        except VedError as error:
            if debug:
                raise
            print(f"Error: {printable(str(error))}", file=sys.stderr)
            code = error.exit_code
        except KeyboardInterrupt:
            print("Interrupted.", file=sys.stderr)
            code = EXIT_INTERRUPTED
        except (BrokenPipeError, typer.Exit, typer.Abort, typer.TyperException):
            raise
        except Exception as error:  # noqa: BLE001 - the one place an unexpected error becomes a message
            if debug:
                raise
            code = _report_crash(error)
    raise typer.Exit(code)


def _report_crash(error: BaseException) -> int:
    """One line for an exception ved did not expect; out of memory is the machine's limit, anything else a bug."""
    from .commands.output import printable

    text = printable((str(error).strip() or type(error).__name__).splitlines()[0])
    if len(text) > 200:
        text = text[:200] + "..."
    if (
        isinstance(error, MemoryError)
        or type(error).__name__ == "OutOfMemoryError"
        or ("can't allocate memory" in text)
    ):
        print(f"Error: out of memory ({text}); try a smaller --batch-size or --beams, or a machine with more memory",
              file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    print(f"Error: ved crashed ({type(error).__name__}: {text}); this is a bug: please report it with the output "
          "of the same command run with VED_DEBUG=1", file=sys.stderr)  # fmt: skip
    return EXIT_CRASH


def run(settings: RunSettings, stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    """Caption every input; returns the exit code (1 if some input was bad). Raises VedError for a bad run."""
    return EXIT_BAD_INPUT if caption_inputs(settings, stdin, stdout, stderr) else EXIT_OK


def _quiet_hub_downloads(stderr: TextIO) -> None:
    """huggingface_hub: no warnings on stderr; download bars only on a terminal."""
    from huggingface_hub.utils import disable_progress_bars, logging

    logging.set_verbosity_error()
    if not is_terminal(stderr):
        disable_progress_bars()


def _quiet_pipe(work: Callable[[], int]) -> Callable[[], int]:
    """`work`, where a closed stdout (`ved ... | head`) ends the command quietly with EXIT_BROKEN_PIPE."""

    def quietly() -> int:
        try:
            return work()
        except BrokenPipeError:
            _silence_stdout()
            return EXIT_BROKEN_PIPE

    return quietly


def _silence_stdout() -> None:
    """Point stdout at /dev/null: what is left in its buffer goes nowhere, and Python's exit-time flush is quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # not a real file (tests): nothing will flush to a pipe
        sys.stdout = open(os.devnull, "w")


def main(argv: list[str] | None = None) -> int:
    """Console entry point (`ved`, `python -m vedcli`): command-line mistakes too become one `Error:` line."""
    interrupts.starting()  # Ctrl-C before the command's work: "Interrupted.", exit 130 at once
    try:
        return _main(argv)
    finally:
        interrupts.started()  # the caller's Ctrl-C handling again (main called from Python)


def _main(argv: list[str] | None) -> int:
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="ved", standalone_mode=False)
    except typer.TyperException as error:  # bad flags or values, found while parsing the command line
        message = error.format_message()
        if not message.strip() or "\n" in message:  # `ved` alone: typer has shown the help, or hands it here
            if message.strip():
                print(message, file=sys.stderr)
        else:
            ctx = getattr(error, "ctx", None)
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            print(f"Error: {message}{hint}", file=sys.stderr)
        return error.exit_code
    except typer.Abort:  # click's word for a KeyboardInterrupt outside a command's work
        print("Interrupted.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`ved ... | head`): stop quietly; stdout's unwritten rest goes nowhere, so Python's
        # exit-time flush stays quiet too.
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except Exception as error:  # noqa: BLE001 - outside a command's work (parsing, imports): still one line
        if os.environ.get("VED_DEBUG") == "1":
            raise
        return _report_crash(error)
    return code if isinstance(code, int) else EXIT_OK
