"""hub.resolve_model: local folders, a fake Hugging Face Hub on 127.0.0.1, the real cache layout, offline mode."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from huggingface_hub import constants

from support.hub import closed_port, point_hub_at
from vedcli.checkpoints.hub import needed_files, resolve_model
from vedcli.errors import ModelError, OptionError

ROOT = Path(__file__).resolve().parents[1]

MAIN_SHA = "1" * 40
TAG_SHA = "2" * 40

# Repo "org/both" at main: every weight format and some extras; ved needs only a few of these.
MAIN_FILES = {
    ".gitattributes": b"*.bin filter=lfs\n",
    "README.md": b"# model card\n",
    "config.json": b'{"model_type": "vision-encoder-decoder"}',
    "generation_config.json": b'{"max_length": 5}',
    "preprocessor_config.json": b'{"size": 8}',
    "tokenizer.json": b'{"version": "1.0"}',
    "tokenizer_config.json": b"{}",
    "vocab.json": b'{"a": 0}',
    "merges.txt": b"#version: 0.2\n",
    "spiece.model": b"sentencepiece bytes",
    "model.safetensors": b"safetensors bytes",
    "pytorch_model.bin": b"pickle bytes",
    "tf_model.h5": b"keras bytes",
    "flax_model.msgpack": b"flax bytes",
    "onnx/encoder_model.onnx": b"onnx bytes",
}
MAIN_NEEDED = {
    "config.json",
    "generation_config.json",
    "preprocessor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "model.safetensors",
}
# The same repo at tag v1: sharded .bin weights only.
TAG_FILES = {
    "config.json": b'{"model_type": "vision-encoder-decoder", "v": 1}',
    "vocab.txt": b"[PAD]\n",
    "pytorch_model.bin.index.json": b'{"weight_map": {}}',
    "pytorch_model-00001-of-00002.bin": b"shard one",
    "pytorch_model-00002-of-00002.bin": b"shard two",
    "tf_model.h5": b"keras bytes",
}
TAG_NEEDED = set(TAG_FILES) - {"tf_model.h5"}


class FakeHub(BaseHTTPRequestHandler):
    """The few hub endpoints huggingface_hub calls for model_info, snapshot_download and hf_hub_download."""

    protocol_version = "HTTP/1.1"
    repos = {"org/both": {"main": MAIN_SHA, "v1": TAG_SHA}}
    commits = {MAIN_SHA: MAIN_FILES, TAG_SHA: TAG_FILES}
    downloads: list[str] = []

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def do_GET(self) -> None:
        self._answer(head=False)

    def _answer(self, head: bool) -> None:
        parts = [unquote(p) for p in urlsplit(self.path).path.strip("/").split("/")]
        if parts[:2] == ["api", "models"]:
            repo_id, rest = "/".join(parts[2:4]), parts[4:]
            sha = self._commit(repo_id, rest[1] if len(rest) > 1 else "main")
            if sha is None:
                return
            files = self.commits[sha]
            if rest and rest[0] == "tree":
                body = [
                    {"type": "file", "oid": hashlib.sha1(data).hexdigest(), "size": len(data), "path": name}
                    for name, data in sorted(files.items())
                ]
            else:
                body = {
                    "id": repo_id,
                    "modelId": repo_id,
                    "sha": sha,
                    "private": False,
                    "siblings": [{"rfilename": name} for name in sorted(files)],
                }
            return self._send(200, json.dumps(body).encode(), {"Content-Type": "application/json"}, head)
        if len(parts) >= 5 and parts[2] == "resolve":
            repo_id, name = "/".join(parts[:2]), "/".join(parts[4:])
            sha = self._commit(repo_id, parts[3])
            if sha is None:
                return
            data = self.commits[sha].get(name)
            if data is None:
                return self._send(404, b"", {"X-Error-Code": "EntryNotFound"}, head)
            if not head:
                FakeHub.downloads.append(name)
            etag = '"' + hashlib.sha256(data).hexdigest() + '"'
            return self._send(200, data, {"ETag": etag, "X-Repo-Commit": sha}, head)
        self._send(404, b"", {}, head)

    def _commit(self, repo_id: str, revision: str) -> str | None:
        refs = self.repos.get(repo_id)
        if refs is None:
            self._send(404, b"", {"X-Error-Code": "RepoNotFound"}, self.command == "HEAD")
            return None
        sha = refs.get(revision, revision if revision in self.commits else None)
        if sha is None:
            self._send(404, b"", {"X-Error-Code": "RevisionNotFound"}, self.command == "HEAD")
        return sha

    def _send(self, status: int, data: bytes, headers: dict[str, str], head: bool) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if not head:
            self.wfile.write(data)


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch):
    """A fake hub on a loopback port, stopped when the test ends."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeHub)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    FakeHub.downloads = []
    point_hub_at(monkeypatch, f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    yield FakeHub
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def _files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def _go_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


# --- local folders and names that are neither -------------------------------------------------------------------


def test_local_folder_is_used_as_is(tmp_path: Path) -> None:
    assert resolve_model(str(tmp_path)) == tmp_path


def test_revision_with_local_folder_names_the_flag(tmp_path: Path) -> None:
    with pytest.raises(OptionError) as info:
        resolve_model(str(tmp_path), revision="main")
    assert info.value.option == "revision"


@pytest.mark.parametrize("name", ["no/such/folder", "bad..name", "./missing-folder", "-x"])
def test_not_a_folder_nor_a_repo_id(name: str, tmp_path: Path) -> None:
    with pytest.raises(ModelError) as info:
        resolve_model(name, cache_dir=tmp_path)
    assert info.value.message == "no such folder or hub model"
    assert info.value.where == name


def test_a_file_is_not_a_model(tmp_path: Path) -> None:
    file = tmp_path / "model.safetensors"
    file.write_bytes(b"x")
    with pytest.raises(ModelError, match="not a file"):
        resolve_model(str(file))


# --- which files a repo listing needs -------------------------------------------------------------------------


def test_needed_files_prefers_safetensors_and_skips_other_formats() -> None:
    assert set(needed_files(list(MAIN_FILES))) == MAIN_NEEDED


def test_needed_files_sharded_bin() -> None:
    assert set(needed_files(list(TAG_FILES))) == TAG_NEEDED


def test_needed_files_sharded_safetensors_wins_over_bin() -> None:
    listing = [
        "config.json",
        "model.safetensors.index.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "pytorch_model.bin",
        "sub/model.safetensors",
    ]
    assert set(needed_files(listing)) == {
        "config.json",
        "model.safetensors.index.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    }


def test_needed_files_without_pytorch_weights() -> None:
    with pytest.raises(ModelError, match="no model.safetensors or pytorch_model.bin"):
        needed_files(["config.json", "tf_model.h5", "flax_model.msgpack"])


# --- the fake hub: downloads, then offline ------------------------------------------------------------------------


def test_download_takes_only_the_needed_files(hub, tmp_path: Path) -> None:
    folder = resolve_model("org/both", cache_dir=tmp_path)
    assert folder == tmp_path / "models--org--both" / "snapshots" / MAIN_SHA
    assert _files(folder) == MAIN_NEEDED
    assert sorted(hub.downloads) == sorted(MAIN_NEEDED)
    assert all((folder / name).read_bytes() == MAIN_FILES[name] for name in MAIN_NEEDED)
    assert (tmp_path / "models--org--both" / "refs" / "main").read_text() == MAIN_SHA


def test_download_by_tag_takes_sharded_bin(hub, tmp_path: Path) -> None:
    folder = resolve_model("org/both", revision="v1", cache_dir=tmp_path)
    assert folder.name == TAG_SHA
    assert _files(folder) == TAG_NEEDED
    assert sorted(hub.downloads) == sorted(TAG_NEEDED)


def test_second_resolve_downloads_nothing(hub, tmp_path: Path) -> None:
    resolve_model("org/both", cache_dir=tmp_path)
    hub.downloads.clear()
    assert resolve_model("org/both", cache_dir=tmp_path).name == MAIN_SHA
    assert hub.downloads == []


def test_missing_repo_online(hub, tmp_path: Path) -> None:
    with pytest.raises(ModelError) as info:
        resolve_model("org/nothing", cache_dir=tmp_path)
    assert (info.value.message, info.value.where) == ("no such folder or hub model", "org/nothing")


def test_missing_revision_online(hub, tmp_path: Path) -> None:
    with pytest.raises(ModelError) as info:
        resolve_model("org/both", revision="v9", cache_dir=tmp_path)
    assert "'v9'" in info.value.message and "not found" in info.value.message
    assert info.value.where == "org/both"


def test_offline_uses_the_cache_by_branch_and_by_commit(hub, tmp_path: Path, monkeypatch) -> None:
    online = resolve_model("org/both", cache_dir=tmp_path)
    _go_offline(monkeypatch)
    hub.downloads.clear()
    assert resolve_model("org/both", cache_dir=tmp_path) == online
    assert resolve_model("org/both", revision="main", cache_dir=tmp_path) == online
    assert resolve_model("org/both", revision=MAIN_SHA, cache_dir=tmp_path) == online
    assert hub.downloads == []


def test_offline_revision_not_cached(hub, tmp_path: Path, monkeypatch) -> None:
    resolve_model("org/both", cache_dir=tmp_path)
    _go_offline(monkeypatch)
    for revision in ("v1", TAG_SHA):
        with pytest.raises(ModelError) as info:
            resolve_model("org/both", revision=revision, cache_dir=tmp_path)
        message = str(info.value)
        assert "not in the local cache" in message and "offline mode is on" in message
        assert info.value.where == "org/both" and revision in message


def test_offline_model_not_cached_is_one_clear_error(tmp_path: Path, monkeypatch) -> None:
    _go_offline(monkeypatch)
    with pytest.raises(ModelError) as info:
        resolve_model("org/other", cache_dir=tmp_path)
    assert info.value.message == "model is not in the local cache and offline mode is on (HF_HUB_OFFLINE)"
    assert info.value.where == "org/other"


def test_offline_incomplete_snapshot(hub, tmp_path: Path, monkeypatch) -> None:
    folder = resolve_model("org/both", cache_dir=tmp_path)
    (folder / "model.safetensors").unlink()
    _go_offline(monkeypatch)
    with pytest.raises(ModelError, match="cached copy is incomplete"):
        resolve_model("org/both", cache_dir=tmp_path)


def test_unreachable_hub_falls_back_to_the_cache(hub, tmp_path: Path, monkeypatch) -> None:
    online = resolve_model("org/both", cache_dir=tmp_path)
    point_hub_at(monkeypatch, f"http://127.0.0.1:{closed_port()}")
    start = time.monotonic()
    assert resolve_model("org/both", cache_dir=tmp_path) == online
    with pytest.raises(ModelError) as info:
        resolve_model("org/both", revision="v1", cache_dir=tmp_path)
    assert time.monotonic() - start < 5
    assert "not in the local cache and the hub cannot be reached" in info.value.message


# --- a cache written by hand, in the layout huggingface_hub documents (no cached tree listing) ---------------------


def _handmade_cache(cache: Path) -> Path:
    """models--org--hand/{blobs/<etag>, refs/main, snapshots/<sha>/<file> -> ../../blobs/<etag>}."""
    repo = cache / "models--org--hand"
    snapshot = repo / "snapshots" / MAIN_SHA
    (repo / "blobs").mkdir(parents=True)
    (repo / "refs").mkdir()
    snapshot.mkdir(parents=True)
    (repo / "refs" / "main").write_text(MAIN_SHA)
    for name in ("config.json", "model.safetensors"):
        etag = hashlib.sha256(MAIN_FILES[name]).hexdigest()
        (repo / "blobs" / etag).write_bytes(MAIN_FILES[name])
        os.symlink(f"../../blobs/{etag}", snapshot / name)
    return snapshot


def test_handmade_cache_offline(tmp_path: Path, monkeypatch) -> None:
    snapshot = _handmade_cache(tmp_path)
    _go_offline(monkeypatch)
    assert resolve_model("org/hand", cache_dir=tmp_path) == snapshot
    assert resolve_model("org/hand", revision=MAIN_SHA, cache_dir=tmp_path) == snapshot
    assert (snapshot / "config.json").read_bytes() == MAIN_FILES["config.json"]
    with pytest.raises(ModelError, match="not in the local cache"):
        resolve_model("org/hand", revision="dev", cache_dir=tmp_path)


def test_handmade_cache_found_through_hf_hub_cache_env(tmp_path: Path, monkeypatch) -> None:
    snapshot = _handmade_cache(tmp_path)
    _go_offline(monkeypatch)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    assert resolve_model("org/hand") == snapshot


def test_environment_variables_in_a_fresh_process(tmp_path: Path) -> None:
    """HF_HUB_CACHE, HF_HUB_OFFLINE and HF_ENDPOINT as a user sets them; the unreachable-hub error is fast."""
    snapshot = _handmade_cache(tmp_path)
    code = (
        "import time\nfrom vedcli.checkpoints.hub import resolve_model\nfrom vedcli.errors import ModelError\n"
        "print(resolve_model('org/hand'))\nstart = time.monotonic()\n"
        "try:\n    resolve_model('org/absent')\nexcept ModelError as e:\n    print(e)\n"
        "print(time.monotonic() - start < 3)\n"
    )
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path), "PYTHONPATH": str(ROOT)}
    env.pop("HF_HUB_OFFLINE", None)
    for name, extra, why in [
        ("unreachable", {"HF_ENDPOINT": f"http://127.0.0.1:{closed_port()}"}, "the hub cannot be reached"),
        ("offline", {"HF_HUB_OFFLINE": "1"}, "offline mode is on (HF_HUB_OFFLINE)"),
    ]:
        done = subprocess.run(
            [sys.executable, "-c", code],
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert lines == [str(snapshot), f"model is not in the local cache and {why} (org/absent)", "True"], name
