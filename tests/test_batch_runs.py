"""Batch runs that survive: `--resume` after a run cut off anywhere (truncated files, real SIGKILLs), errors as results
and `--retry-failed`, existing outputs refused without `--resume` / `--force`, `--output-dir`, the summary line,
`--fail-fast`, lazy listing, and torchrun: two CPU processes give exactly the one-process output, and a run goes on
with another number of processes.

Most tests use a fake pipeline (exact, instant) whose texts hold commas, quotes, tabs and newlines, so that csv rows
span lines; the kill and torchrun tests run the real command on a tiny checkpoint with one image a batch (results then
do not depend on how the images were batched, so a resumed run must give the same bytes)."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from support.captioning import images, start_caption, torchrun_caption, torchrun_nodes
from vedcli.cli import main
from vedcli.commands import inputs as inputs_module
from vedcli.commands.caption import Listing
from vedcli.commands.inputs import iter_inputs
from vedcli.generation import pipeline as pipeline_module
from vedcli.generation.options import DecodingOptions

SUMMARY = re.compile(r"done (\d+), skipped (\d+), failed (\d+), [\d.e+]+ images/s, wall time [\d.]+ s")


class Fake:
    """Reads an image as a text made of its mean pixel value (one per rank), with characters csv and tsv escape."""

    processor = None

    @classmethod
    def load(cls, model, revision=None, **settings):
        return cls()

    def resolve(self, options):
        return SimpleNamespace(num_return_sequences=options.num_return_sequences or 1, num_beams=1, length_penalty=1.0)

    def run(self, images, options):
        n = options.num_return_sequences or 1
        out = []
        for image in images:
            mean = float(np.asarray(image).mean())
            out.append([SimpleNamespace(text=f'{mean:.3f}, "r{r}"\tcut\nhere', score=-r / 3, tokens=[1]) for r in
                        range(1, n + 1)])  # fmt: skip
        return out


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setattr(pipeline_module, "Pipeline", Fake)
    return Fake


def ved(capsys, *args) -> tuple[int, str]:
    """`ved ARGS` in this process: the exit code and stderr."""
    capsys.readouterr()
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


def inputs_with_a_bad_one(folder: Path, count: int = 6) -> Path:
    images(folder, count)
    (folder / "0002b.png").write_text("not an image")  # between 0002.png and 0003.png
    return folder


# --- a run cut anywhere --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, extra",
    [
        ("out.jsonl", []),
        ("out.csv", []),
        ("out.tsv", []),
        *((name, ["--beams", "2", "--num-return-sequences", "2"]) for name in ("out.jsonl", "out.csv", "out.tsv")),
    ],
)
def test_a_run_cut_at_any_byte_resumes_to_the_same_output(name, extra, fake, tmp_path, capsys):
    """Whatever a kill leaves (any prefix of the file: a record cut in the middle, a csv row cut inside a quoted
    newline, a page of rows of which some are written), --resume ends with exactly the uninterrupted output."""
    folder = inputs_with_a_bad_one(tmp_path / "in")
    full = tmp_path / f"full-{name}"
    assert ved(capsys, "caption", folder, "--batch-size", 3, "-o", full, *extra)[0] == 1
    data = full.read_bytes()
    out = tmp_path / name
    cuts = sorted({0, 1, len(data) - 1, *random.Random(name + str(extra)).sample(range(len(data)), 10)})
    for cut in cuts:
        out.write_bytes(data[:cut])
        code, err = ved(capsys, "caption", folder, "--batch-size", 2, "-o", out, "--resume", *extra)
        assert out.read_bytes() == data, f"cut at {cut}: {err}"
        done, skipped, failed = map(int, SUMMARY.fullmatch(err.splitlines()[-1]).groups())
        assert done + skipped + failed == 7
        assert code == (1 if failed else 0)


FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


class FakeLineReader(Fake):
    def run(self, images, options):
        return [[SimpleNamespace(text=f"w{image.width}", score=-0.3, tokens=[1, 2])] for image in images]


@pytest.mark.skipif(not Path(FONT).exists(), reason="DejaVu fonts not installed")
def test_pages_with_several_rows_resume_whole(monkeypatch, tmp_path, capsys):
    """`ved ocr --layout page --format csv` writes a row per line: a page cut after some of its rows is read again."""
    monkeypatch.setattr(pipeline_module, "Pipeline", FakeLineReader)
    folder = tmp_path / "pages"
    folder.mkdir()
    font = ImageFont.truetype(FONT, 28)
    for i in range(3):
        page = Image.new("RGB", (900, 300), "white")
        for j, text in enumerate(["The quick brown fox jumps", "over the lazy dog" + " again" * i, "and sleeps"]):
            ImageDraw.Draw(page).text((60, 60 + 60 * j), text, fill="black", font=font)
        page.save(folder / f"{i}.png")
    full = tmp_path / "full.csv"
    assert ved(capsys, "ocr", folder, "--layout", "page", "-o", full)[0] == 0
    data = full.read_bytes()
    lines = data.splitlines(keepends=True)
    assert len(lines) == 1 + 9
    out = tmp_path / "out.csv"
    for cut in [len(b"".join(lines[:n])) for n in range(len(lines))] + [len(data) - 3]:
        out.write_bytes(data[:cut])
        assert ved(capsys, "ocr", folder, "--layout", "page", "-o", out, "--resume")[0] == 0
        assert out.read_bytes() == data, cut


@pytest.mark.skipif(not Path(FONT).exists(), reason="DejaVu fonts not installed")
def test_ocr_pages_to_an_output_dir_are_whole_documents(monkeypatch, tmp_path, capsys):
    import xml.etree.ElementTree as ET

    monkeypatch.setattr(pipeline_module, "Pipeline", FakeLineReader)
    folder = tmp_path / "pages"
    folder.mkdir()
    for i in range(2):
        page = Image.new("RGB", (900, 200), "white")
        ImageDraw.Draw(page).text(
            (60, 60), "The quick brown fox" * (i + 1), fill="black", font=ImageFont.truetype(FONT, 28)
        )
        page.save(folder / f"{i}.png")
    out = tmp_path / "out"
    assert ved(capsys, "ocr", folder, "--layout", "page", "--output-dir", out, "--format", "hocr")[0] == 0
    assert sorted(p.name for p in out.iterdir()) == ["0.hocr", "1.hocr"]
    for name in ("0.hocr", "1.hocr"):
        assert "ocr_page" in ET.tostring(ET.parse(out / name).getroot(), encoding="unicode")


# --- errors, existing outputs -----------------------------------------------------------------------------------


def test_errors_are_results_and_retry_failed_puts_them_back_in_place(fake, tmp_path, capsys):
    folder = inputs_with_a_bad_one(tmp_path / "in")
    out = tmp_path / "out.jsonl"
    assert ved(capsys, "caption", folder, "-o", out)[0] == 1
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [("error" in row) for row in rows] == [False, False, False, True, False, False, False]

    code, err = ved(capsys, "caption", folder, "-o", out, "--resume")  # the failure is a result: not read again
    assert (code, SUMMARY.fullmatch(err.strip()).groups()) == (0, ("0", "7", "0"))

    images(tmp_path / "fixed", 1, start=9)
    os.replace(tmp_path / "fixed" / "0009.png", folder / "0002b.png")
    code, err = ved(capsys, "caption", folder, "-o", out, "--resume", "--retry-failed")
    assert (code, SUMMARY.fullmatch(err.strip()).groups()) == (0, ("1", "6", "0"))
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [Path(row["file"]).name for row in rows] == sorted(p.name for p in folder.iterdir())  # in its place
    assert not any("error" in row for row in rows)
    assert not (tmp_path / "out.jsonl.parts").exists()
    full = tmp_path / "full.jsonl"
    ved(capsys, "caption", folder, "-o", full)
    assert out.read_bytes() == full.read_bytes()


def test_an_existing_output_is_refused_without_resume_or_force(fake, tmp_path, capsys):
    folder = images(tmp_path / "in", 2)
    out = tmp_path / "out.jsonl"
    out.write_text('{"file": "mine"}\n')
    code, err = ved(capsys, "caption", folder, "-o", out)
    assert (code, err) == (2, f"Error: already exists; --resume goes on with it, --force writes it anew ({out})\n")
    assert out.read_text() == '{"file": "mine"}\n'
    assert ved(capsys, "caption", folder, "-o", out, "--force")[0] == 0
    assert len(out.read_text().splitlines()) == 2

    photo = tmp_path / "photo.png"  # --force writes over nothing but text
    Image.new("RGB", (4, 4), "red").save(photo)
    before = photo.read_bytes()
    code, err = ved(capsys, "caption", folder, "-o", photo, "--format", "jsonl", "--force")
    assert code == 2 and "is not a text file ved wrote; ved will not replace it" in err
    assert photo.read_bytes() == before


@pytest.mark.parametrize(
    "args, message",
    [
        (["--resume"], "Error: --resume needs --output FILE or --output-dir DIR (--output)\n"),
        (["--retry-failed", "-o", "x.jsonl"], "Error: --retry-failed needs --resume (--retry-failed)\n"),
        (
            ["--resume", "--force", "-o", "x.jsonl"],
            "Error: --resume goes on with the output, --force writes it anew: give one (--force)\n",
        ),  # fmt: skip
        (["-o", "x.jsonl", "--output-dir", "d"], "Error: give --output or --output-dir, not both (--output-dir)\n"),
    ],
)
def test_batch_flags_are_checked_before_the_model_loads(args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert ved(capsys, "caption", images(tmp_path / "in", 1), "--model", tmp_path / "nowhere", *args) == (2, message)


def test_resume_reads_only_results_it_can_parse(fake, tmp_path, capsys):
    folder = images(tmp_path / "in", 2)
    text = tmp_path / "out.txt"
    text.write_text("x: y\n")
    code, err = ved(capsys, "caption", folder, "-o", text, "--resume")
    assert (code, err) == (
        2,
        "Error: --resume reads jsonl, csv or tsv results, not text; or use --output-dir (--resume)\n",
    )
    notes = tmp_path / "notes.csv"
    notes.write_text("name,price\napple,3\n")
    code, err = ved(capsys, "caption", folder, "-o", notes, "--resume")
    assert code == 2 and "is not the header this run writes" in err
    assert notes.read_text() == "name,price\napple,3\n"
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"file": "a"}\nnot json\n{"file": "b"}\n')
    code, err = ved(capsys, "caption", folder, "-o", broken, "--resume")
    assert (code, err) == (2, f"Error: line 2 is not a jsonl row ved wrote; ved will not write to it ({broken})\n")


# --- one file per input -------------------------------------------------------------------------------------------


def test_output_dir_writes_a_file_per_input_and_resumes(fake, tmp_path, capsys):
    folder = images(tmp_path / "in", 2)
    images(folder / "sub", 1, start=5)
    Image.open(folder / "0000.png").save(folder / "0000.jpg")  # the same name but for the extension
    (folder / "bad.png").write_text("no")
    out = tmp_path / "out"
    code, err = ved(capsys, "caption", folder, "--output-dir", out, "--format", "jsonl")
    assert code == 1
    assert err.splitlines()[0] == f"Error: not an image file (unknown format) ({folder / 'bad.png'})"
    made = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert made == ["0000-2.jsonl", "0000.jsonl", "0001.jsonl", "bad.error", "sub/0005.jsonl"]
    assert json.loads((out / "0000-2.jsonl").read_text())["file"] == str(folder / "0000.png")  # .jpg < .png
    assert (out / "bad.error").read_text() == err.splitlines()[0] + "\n"

    code, err = ved(capsys, "caption", folder, "--output-dir", out, "--format", "jsonl")
    assert code == 2 and "already holds results" in err
    (out / "0001.jsonl").unlink()
    (out / ".0001.jsonl.partial").write_text('{"file": ')  # a kill while it was written
    code, err = ved(capsys, "caption", folder, "--output-dir", out, "--format", "jsonl", "--resume")
    assert (code, SUMMARY.fullmatch(err.strip()).groups()) == (0, ("1", "4", "0"))
    assert json.loads((out / "0001.jsonl").read_text())["file"] == str(folder / "0001.png")
    assert not (out / ".0001.jsonl.partial").exists()


# --- summary, fail-fast, lazy listing ------------------------------------------------------------------------------


def test_summary_and_fail_fast(fake, tmp_path, capsys):
    folder = inputs_with_a_bad_one(tmp_path / "in")
    out = tmp_path / "out.jsonl"
    code, err = ved(capsys, "caption", folder, "-o", out, "--batch-size", 1, "--fail-fast")
    assert code == 1
    assert err.splitlines()[-1].startswith("done 3, skipped 0, failed 1, ")
    assert [json.loads(line)["file"] for line in out.read_text().splitlines()][-1] == str(folder / "0002b.png")
    code, err = ved(capsys, "caption", folder, "--format", "jsonl")  # results on stdout: no summary
    assert (code, err) == (1, "")


def test_inputs_are_listed_lazily(tmp_path, monkeypatch):
    """The first input of a tree of folders is found after listing only the folders on its way."""
    for top in range(3):
        images(tmp_path / f"d{top}" / "deep", 2)
    listed = []
    real = os.scandir

    def scandir(path):
        listed.append(os.fspath(path))
        return real(path)

    monkeypatch.setattr(inputs_module.os, "scandir", scandir)
    items = iter_inputs([str(tmp_path)], None)
    assert next(items).path == str(tmp_path / "d0" / "deep" / "0000.png")
    assert listed == [str(tmp_path), str(tmp_path / "d0"), str(tmp_path / "d0" / "deep")]
    listing = Listing(iter_inputs([str(tmp_path)], None))
    assert [item.path for item in listing.peek(1)] == [str(tmp_path / "d0" / "deep" / "0000.png")]
    assert len(list(listing)) == 6


# --- real kills ----------------------------------------------------------------------------------------------------


def kill_and_resume(folder: Path, model: Path, out: Path, tmp_path: Path, kills: int, seed: int, *extra) -> int:
    """Start the run (with --resume), kill it with SIGKILL at a random moment (while starting, or once the output has
    grown past a random size), `kills` times; then let a last run finish. Returns how many kills hit a run that was
    writing."""
    rng = random.Random(seed)
    writing = 0
    for _ in range(kills):
        size = out.stat().st_size if out.exists() else 0
        process = start_caption(folder, model, tmp_path, "-o", str(out), "--resume", *extra)
        if rng.random() < 0.25:
            time.sleep(rng.uniform(0.1, 2.0))  # while importing, loading, or reading
        else:
            target = size + rng.randint(1, 400)
            deadline = time.monotonic() + 60
            while process.poll() is None and time.monotonic() < deadline:
                if out.exists() and out.stat().st_size >= target:
                    break
                time.sleep(0.005)
            writing += 1
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=60)
    last = start_caption(folder, model, tmp_path, "-o", str(out), "--resume", *extra)
    _stdout, stderr = last.communicate(timeout=900)
    assert last.returncode in (0, 1), stderr  # 1: the bad input was met by this last run
    return writing


def reference(capsys, folder: Path, model: Path, out: Path, *extra) -> bytes:
    assert ved(capsys, "caption", folder, "--model", model, "--batch-size", 1, "-o", out, *extra)[0] == 0
    return out.read_bytes()


def test_killed_runs_resume_to_the_uninterrupted_output(tiny, tmp_path, capsys):
    model = tiny("vit", "gpt2")
    folder = images(tmp_path / "in", 16)
    expected = reference(capsys, folder, model, tmp_path / "full.csv", "--max-new-tokens", 4)
    out = tmp_path / "out.csv"
    kill_and_resume(folder, model, out, tmp_path, 2, 0, "--max-new-tokens", "4")
    assert out.read_bytes() == expected


@pytest.mark.slow
@pytest.mark.parametrize("name", ["out.jsonl", "out.tsv"])
def test_twenty_kills_at_random_points(name, tiny, tmp_path, capsys):
    model = tiny("vit", "gpt2")
    folder = images(tmp_path / "in", 60)
    (folder / "0030b.png").write_text("broken")
    extra = ("--max-new-tokens", "3", "--beams", "2", "--num-return-sequences", "2")
    out = tmp_path / name
    assert ved(capsys, "caption", folder, "--model", model, "--batch-size", 1, "-o", tmp_path / f"full-{name}",
               *extra)[0] == 1  # fmt: skip
    expected = (tmp_path / f"full-{name}").read_bytes()
    writing = kill_and_resume(folder, model, out, tmp_path, 21, 7, *extra)
    assert writing >= 10
    assert out.read_bytes() == expected


# --- several processes -----------------------------------------------------------------------------------------------


@pytest.fixture
def one_thread():
    """The in-process runs on one thread, as torchrun's workers are (OMP_NUM_THREADS=1): the same float32 reduction
    order on every CPU, so that scores agree to the last digit with the workers' however many cores the machine has."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.usefixtures("one_thread")
def test_two_processes_give_the_one_process_output(tiny, tmp_path, capsys):
    model = tiny("vit", "gpt2")
    folder = images(tmp_path / "in", 9)
    (folder / "0004b.png").write_text("broken")
    expected = tmp_path / "one.jsonl"
    assert ved(capsys, "caption", folder, "--model", model, "--batch-size", 1, "-o", expected,
               "--max-new-tokens", 4)[0] == 1  # fmt: skip
    out = tmp_path / "two.jsonl"
    done = torchrun_caption(folder, model, tmp_path, "-o", str(out), "--max-new-tokens", "4")
    assert done.returncode != 0  # rank 0 exits 1: an input was bad
    assert out.read_bytes() == expected.read_bytes(), done.stderr
    assert not (tmp_path / "two.jsonl.parts").exists()
    assert SUMMARY.search(done.stderr).groups() == ("9", "0", "1")


@pytest.mark.usefixtures("one_thread")
def test_two_machines_give_the_one_process_output(tiny, tmp_path, capsys):
    """Two torchrun launchers meeting through a c10d rendezvous, as on two machines (here both on this host, the
    output on the file system both see): the same output as one process, merged by whichever process got rank 0."""
    model = tiny("vit", "gpt2")
    folder = images(tmp_path / "in", 7)
    expected = tmp_path / "one.jsonl"
    assert ved(capsys, "caption", folder, "--model", model, "--batch-size", 1, "-o", expected,
               "--max-new-tokens", 4)[0] == 0  # fmt: skip
    out = tmp_path / "two.jsonl"
    done = torchrun_nodes(folder, model, tmp_path, "-o", str(out), "--max-new-tokens", "4")
    assert [d.returncode for d in done] == [0, 0], [d.stderr[-2000:] for d in done]
    assert out.read_bytes() == expected.read_bytes()
    assert not (tmp_path / "two.jsonl.parts").exists()
    summaries = [SUMMARY.search(d.stderr) for d in done]
    assert sorted(m is not None for m in summaries) == [False, True]  # rank 0's launcher prints it
    assert next(m for m in summaries if m).groups() == ("7", "0", "0")


@pytest.mark.usefixtures("one_thread")
def test_fail_fast_under_torchrun_stops_every_process(tiny, tmp_path):
    """Process 1 meets a bad input first thing; process 0, with 100 good ones of its own, stops soon after (it looks
    for the stop after each batch) instead of reading its whole share; what was read is merged, exit code 1."""
    model = tiny("vit", "gpt2")
    folder = images(tmp_path / "in", 200)
    (folder / "0000b.png").write_text("broken")  # input number 1: process 1's first
    out = tmp_path / "out.jsonl"
    done = torchrun_caption(folder, model, tmp_path, "-o", str(out), "--max-new-tokens", "8", "--fail-fast")
    assert done.returncode != 0, done.stderr
    read, skipped, failed = map(int, SUMMARY.search(done.stderr).groups())
    assert (skipped, failed) == (0, 1)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == read + failed and not (tmp_path / "out.jsonl.parts").exists()
    assert [r["file"] for r in records if "error" in r] == [str(folder / "0000b.png")]
    assert read < 50, f"process 0 read {read} of its 100: it did not stop"  # process 1 read none


def kill_tree(pid: int) -> None:
    """SIGKILL `pid` and every process below it (found through /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        tree.append(todo.pop())
        todo += children.get(tree[-1], [])
    for member in tree:
        try:
            os.kill(member, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.usefixtures("one_thread")
def test_a_run_goes_on_with_another_number_of_processes(tiny, tmp_path, capsys):
    """Killed under torchrun with two processes, then resumed alone; cut alone, then resumed with two."""
    model = tiny("vit", "gpt2")
    folder = images(tmp_path / "in", 24)
    expected = reference(capsys, folder, model, tmp_path / "full.csv", "--max-new-tokens", 4)

    out = tmp_path / "out.csv"
    parts = tmp_path / "out.csv.parts"
    cmd = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "vedcli", "caption"]
    cmd += [str(folder), "--model", str(model), "--batch-size", "1", "-o", str(out), "--max-new-tokens", "4"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    launch = subprocess.Popen([sys.executable, *cmd], env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        written = sum(len(p.read_bytes().splitlines()) for p in parts.glob("*.jsonl")) if parts.exists() else 0
        if written >= 6:
            break
        time.sleep(0.02)
    kill_tree(launch.pid)  # torchrun's workers too: they run in sessions of their own
    launch.wait(timeout=60)
    assert parts.exists() and not out.exists()
    code, err = ved(capsys, "caption", folder, "--model", model, "--batch-size", 1, "-o", out, "--max-new-tokens", 4,
                    "--resume")  # fmt: skip
    assert code == 0, err
    assert out.read_bytes() == expected and not parts.exists()

    data = expected
    out.write_bytes(data[: len(data) // 3])
    done = torchrun_caption(folder, model, tmp_path, "-o", str(out), "--max-new-tokens", "4", "--resume")
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == expected


# --- data loading ----------------------------------------------------------------------------------------------------


def test_reader_threads_hand_the_model_its_pixel_values(tiny, tmp_path):
    """The reading threads make the processor's pixel values; the pipeline takes them as they are, and gives what it
    gives for the images themselves."""
    from vedcli.commands.caption import _Reader
    from vedcli.commands.inputs import InputItem

    pipeline = pipeline_module.Pipeline.load(tiny("vit", "gpt2"))
    files = sorted(images(tmp_path / "in", 3).iterdir())
    rows = [_Reader(None, pipeline.processor)(InputItem(str(f))) for f in files]
    assert all(row[1].shape == (3, *pipeline.processor.config.output_size()) for row in rows)
    options = DecodingOptions(max_new_tokens=4)
    from_pixels = pipeline.run([row[1] for row in rows], options)
    from_images = pipeline.run([Image.open(f) for f in files], options)
    assert [[(h.text, h.score) for h in hyps] for hyps in from_pixels] == [
        [(h.text, h.score) for h in hyps] for hyps in from_images
    ]


@pytest.mark.cuda
def test_a_batch_reaches_the_gpu_from_pinned_memory(tiny, tmp_path, monkeypatch):
    import torch

    from vedcli.commands.caption import _Reader
    from vedcli.commands.inputs import InputItem

    pinned = []
    real = torch.Tensor.to

    def spy(self, *args, **kwargs):
        if kwargs.get("non_blocking"):
            pinned.append(self.is_pinned())
        return real(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "to", spy)
    files = sorted(images(tmp_path / "in", 3).iterdir())
    options = DecodingOptions(max_new_tokens=4)
    results = {}
    for device in ("cpu", "cuda"):
        pipeline = pipeline_module.Pipeline.load(tiny("vit", "gpt2"), device=device)
        rows = [_Reader(None, pipeline.processor)(InputItem(str(f))) for f in files]
        results[device] = [hyps[0].text for hyps in pipeline.run([row[1] for row in rows], options)]
    assert pinned and all(pinned)
    assert results["cuda"] == results["cpu"]
