"""The dataset registry and its download cache (transformer/data/datasets.py), against a local
HTTP server on 127.0.0.1: downloads verify, failures leave nothing behind and say where to put
the file by hand; plus the readers and `transformer data`."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import re
import shutil
import socket
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pooch
import pytest

from transformer.cli import main
from transformer.data import datasets
from transformer.data.datasets import (
    DATASETS,
    Archive,
    Dataset,
    DatasetError,
    RemoteFile,
    cache_dir,
    fetch,
    fetch_all,
    multi30k,
    read_parallel,
    status,
    tiny_shakespeare,
    wikitext2,
)

# ------------------------------------------------------------------------ a local HTTP server


@dataclass
class Server:
    """Serves ``routes[path] = (body, declared Content-Length or None)``; 404 otherwise."""

    base: str
    routes: dict[str, tuple[bytes, int | None]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)

    def serve(self, path: str, body: bytes, content_length: int | None = None) -> str:
        self.routes[path] = (body, content_length)
        return self.base + path


def _handler(server: Server) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            server.requests.append(self.path)
            if self.path not in server.routes:
                self.send_error(404)
                return
            body, declared = server.routes[self.path]
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body) if declared is None else declared))
            self.end_headers()
            self.wfile.write(body)  # HTTP/1.0: the connection closes after the body

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy",
                "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    state = Server(f"http://127.0.0.1:{httpd.server_address[1]}")
    httpd.RequestHandlerClass = _handler(state)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02},
                              daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _toy(url: str, data: bytes, name: str = "a.txt") -> Dataset:
    """A one-file dataset whose registered checksum is that of ``data``."""
    return Dataset("toy", "a test dataset", (RemoteFile(name, url, len(data), _sha(data)),),
                   licence="CC0", homepage="https://example.org")


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


GOOD = b"one line\nanother line\n" * 50

# ------------------------------------------------------------------------------------- fetch


def test_good_file_is_fetched_verified_and_not_requested_or_hashed_again(server, tmp_path,
                                                                         monkeypatch):
    ds = _toy(server.serve("/a.txt", GOOD), GOOD)
    path = fetch(ds, cache_dir=tmp_path, progress=False)
    assert path == tmp_path / "toy" / "a.txt"
    assert path.read_bytes() == GOOD
    assert server.requests == ["/a.txt"]
    assert status(ds, tmp_path) == {"a.txt": "ok"}

    def no_hashing(path: Path) -> str:
        raise AssertionError(f"{path} was hashed again")

    monkeypatch.setattr(datasets, "_sha256", no_hashing)  # the stamp vouches for it
    assert fetch(ds, "a.txt", cache_dir=tmp_path, progress=False) == path
    assert server.requests == ["/a.txt"]  # no second request


def test_file_put_in_the_cache_by_hand_is_verified_and_used_without_a_download(server,
                                                                               tmp_path):
    ds = _toy(server.serve("/a.txt", GOOD), GOOD)
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "a.txt").write_bytes(GOOD)  # as .ci/run seeds the cache
    assert fetch(ds, cache_dir=tmp_path, progress=False).read_bytes() == GOOD
    assert server.requests == []


@pytest.mark.parametrize("modified", ["other length", "same length, new time"])
def test_cached_file_that_was_modified_is_fetched_again(server, tmp_path, modified):
    ds = _toy(server.serve("/a.txt", GOOD), GOOD)
    path = fetch(ds, cache_dir=tmp_path, progress=False)
    if modified == "other length":
        path.write_bytes(GOOD + b"edited\n")
    else:
        path.write_bytes(GOOD.replace(b"one", b"two"))
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert status(ds, tmp_path) == {"a.txt": "corrupt"}
    assert fetch(ds, cache_dir=tmp_path, progress=False).read_bytes() == GOOD
    assert server.requests == ["/a.txt", "/a.txt"]
    assert status(ds, tmp_path) == {"a.txt": "ok"}


def _scenario(server: Server, name: str) -> tuple[Dataset, str]:
    """A dataset whose only download fails the way ``name`` says, and the cause expected."""
    if name == "checksum mismatch":
        url = server.serve("/a.txt", GOOD.replace(b"one", b"0ne"))
        return _toy(url, GOOD), "checksum mismatch"
    if name == "HTTP 404":
        return _toy(server.base + "/nowhere.txt", GOOD), "HTTP 404"
    if name == "connection refused":
        return _toy(f"http://127.0.0.1:{_free_port()}/a.txt", GOOD), "offline or connection refused"
    assert name == "interrupted"
    url = server.serve("/a.txt", GOOD[:300], content_length=len(GOOD))  # then it hangs up
    return _toy(url, GOOD), "interrupted"


@pytest.mark.parametrize("failure", ["checksum mismatch", "HTTP 404", "connection refused",
                                     "interrupted"])
def test_failed_download_raises_dataset_error_saying_where_to_put_the_file_and_leaves_nothing(
        server, tmp_path, failure):
    ds, cause = _scenario(server, failure)
    url = ds.files[0].url
    with pytest.raises(DatasetError) as info:
        fetch(ds, cache_dir=tmp_path, progress=False)
    first_line = str(info.value).splitlines()[0]
    assert f"toy/a.txt: cannot get it from {url} ({cause}" in first_line
    assert f"put the file by hand at {tmp_path / 'toy' / 'a.txt'}" in first_line
    assert isinstance(info.value, OSError)
    assert info.value.path == tmp_path / "toy" / "a.txt" and info.value.url == url
    assert _files(tmp_path) == []  # no partial download, no temporary file, no stamp
    assert not (tmp_path / "toy").exists()  # not even the folder it would have gone into
    assert str(pickle.loads(pickle.dumps(info.value))) == str(info.value)
    assert status(ds, tmp_path) == {"a.txt": "missing"}


def test_corrupt_cached_file_that_cannot_be_fetched_again_is_removed(tmp_path):
    ds = _toy(f"http://127.0.0.1:{_free_port()}/a.txt", GOOD)
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "a.txt").write_bytes(b"not it")
    with pytest.raises(DatasetError, match="did not match its SHA-256 and was removed"):
        fetch(ds, cache_dir=tmp_path, progress=False)
    assert _files(tmp_path) == []


def test_env_var_and_argument_move_the_cache_and_the_argument_wins(server, tmp_path,
                                                                   monkeypatch):
    ds = _toy(server.serve("/a.txt", GOOD), GOOD)
    monkeypatch.delenv("TRANSFORMER_DATA_DIR", raising=False)
    assert cache_dir() == Path(pooch.os_cache("executable-transformer")).absolute()
    monkeypatch.setenv("TRANSFORMER_DATA_DIR", "")  # empty: as if unset
    assert cache_dir() == Path(pooch.os_cache("executable-transformer")).absolute()
    monkeypatch.setenv("TRANSFORMER_DATA_DIR", str(tmp_path / "env"))
    assert cache_dir() == tmp_path / "env"
    assert fetch(ds, progress=False) == tmp_path / "env" / "toy" / "a.txt"
    arg = fetch(ds, cache_dir=tmp_path / "arg", progress=False)
    assert arg == tmp_path / "arg" / "toy" / "a.txt" and arg.read_bytes() == GOOD
    assert cache_dir(tmp_path / "arg") == tmp_path / "arg"


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def test_files_inside_an_archive_are_extracted_verified_and_share_one_download(server,
                                                                              tmp_path):
    members = {"corpus/train.raw": GOOD, "corpus/test.raw": b"a test split\n"}
    blob = _zip(members)
    url = server.serve("/corpus.zip", blob)
    archive = Archive("corpus.zip", len(blob), _sha(blob))
    ds = Dataset("zipped", "two files in one zip", tuple(
        RemoteFile(m.split("/")[1], url, len(data), _sha(data), archive=archive, member=m)
        for m, data in members.items()), licence="CC0", homepage="https://example.org")
    paths = fetch_all(ds, cache_dir=tmp_path, progress=False)
    assert {name: p.read_bytes() for name, p in paths.items()} == {
        "train.raw": GOOD, "test.raw": b"a test split\n"}
    assert server.requests == ["/corpus.zip"]  # the archive is verified once, then kept
    assert _files(tmp_path / "zipped") == sorted(
        [".corpus.zip.verified", ".test.raw.verified", ".train.raw.verified", "corpus.zip",
         "test.raw", "train.raw"])
    paths["test.raw"].unlink()
    assert fetch(ds, "test.raw", cache_dir=tmp_path, progress=False).exists()
    assert server.requests == ["/corpus.zip"]  # taken again from the cached archive

    wrong = RemoteFile("train.raw", url, None, "0" * 64, archive=archive,
                       member="corpus/train.raw")
    bad = Dataset("bad-member", "a member with the wrong checksum", (wrong,), licence="CC0",
                  homepage="https://example.org")
    with pytest.raises(DatasetError, match=r"bad-member/train.raw: .*\(checksum mismatch"):
        fetch(bad, cache_dir=tmp_path, progress=False)
    assert _files(tmp_path / "bad-member") == [".corpus.zip.verified", "corpus.zip"]


def test_archive_with_the_wrong_checksum_is_a_dataset_error_and_not_kept(server, tmp_path):
    blob = _zip({"corpus/train.raw": GOOD})
    url = server.serve("/corpus.zip", blob)
    ds = Dataset("zipped", "", (RemoteFile("train.raw", url, len(GOOD), _sha(GOOD),
                                           archive=Archive("corpus.zip", None, "1" * 64),
                                           member="corpus/train.raw"),),
                 licence="CC0", homepage="https://example.org")
    with pytest.raises(DatasetError, match=r"checksum mismatch.*\n.*or put corpus.zip"):
        fetch(ds, cache_dir=tmp_path, progress=False)
    assert _files(tmp_path) == []


# ------------------------------------------------------------------------------ names, registry


def test_unknown_dataset_file_and_split_names_list_the_valid_ones():
    with pytest.raises(ValueError, match=re.escape(
            "unknown dataset 'nope'; registered: multi30k, squad-v1.1, tinyshakespeare, "
            "wikitext-2-raw")):
        fetch("nope")
    with pytest.raises(ValueError, match=re.escape(
            "no file 'train.fr.gz'; its files: train.de.gz, train.en.gz, val.de.gz")):
        fetch("multi30k", "train.fr.gz")
    with pytest.raises(ValueError, match=re.escape(
            "has 6 files, name one with file=: train.de.gz")):
        fetch("multi30k")
    with pytest.raises(ValueError, match="unknown split 'dev'; splits: train, val, test"):
        multi30k("dev")
    with pytest.raises(ValueError, match="unknown split 'validation'; splits: train, valid"):
        wikitext2("validation")
    with pytest.raises(ValueError, match="archive and member go together"):
        RemoteFile("x", "https://example.org/x.zip", None, "0" * 64, member="x")


def test_registry_entries_are_well_formed():
    assert sorted(DATASETS) == ["multi30k", "squad-v1.1", "tinyshakespeare", "wikitext-2-raw"]
    hex64 = re.compile(r"[0-9a-f]{64}")
    for key, ds in DATASETS.items():
        assert ds.name == key and ds.description and ds.licence.strip()
        assert ds.homepage.startswith("https://")
        assert ds.files and len({f.name for f in ds.files}) == len(ds.files)
        for f in ds.files:
            assert f.url.startswith("https://"), f
            assert hex64.fullmatch(f.sha256), f
            assert f.size is None or (isinstance(f.size, int) and f.size > 0), f
            if f.archive is not None:
                assert hex64.fullmatch(f.archive.sha256) and f.member.endswith("/" + f.name)
                assert f.url.endswith("/" + f.archive.name)
            else:
                assert f.url.endswith("/" + f.name)
    assert [f.name for f in DATASETS["multi30k"].files] == [
        f"{split}.{lang}.gz" for split in ("train", "val", "test_2016_flickr")
        for lang in ("de", "en")]
    assert all(f.url.startswith("https://raw.githubusercontent.com/multi30k/dataset/master/"
                                "data/task1/raw/") for f in DATASETS["multi30k"].files)


# ---------------------------------------------------------------------------------- readers


def test_read_parallel_pairs_lines_of_gzipped_and_plain_files(tmp_path):
    (src := tmp_path / "a.de.gz").write_bytes(gzip.compress("Ein Hund.\nZwei  weiße Katzen. \n"
                                                            .encode()))
    (tgt := tmp_path / "a.en").write_bytes(b"A dog.\r\nTwo white cats.\n")
    assert read_parallel(src, tgt) == [("Ein Hund.", "A dog."),
                                       ("Zwei  weiße Katzen. ", "Two white cats.")]


def test_read_parallel_with_different_line_counts_names_both_files_and_counts(tmp_path):
    (src := tmp_path / "a.de").write_text("eins\nzwei\ndrei\n", encoding="utf-8")
    (tgt := tmp_path / "a.en.gz").write_bytes(gzip.compress(b"one\ntwo\n"))
    with pytest.raises(ValueError, match=rf"{re.escape(str(src))} has 3 lines but "
                       rf"{re.escape(str(tgt))} has 2"):
        read_parallel(src, tgt)


def test_multi30k_splits_have_the_published_sizes(dataset_file):
    for stem in ("train", "val", "test_2016_flickr"):
        for lang in ("de", "en"):
            dataset_file("multi30k", f"{stem}.{lang}.gz")
    sizes = {split: len(multi30k(split, progress=False)) for split in ("train", "val", "test")}
    assert sizes == {"train": 29_000, "val": 1_014, "test": 1_000}
    assert multi30k("train")[0] == ("Zwei junge weiße Männer sind im Freien in der Nähe vieler "
                                    "Büsche.", "Two young, White males are outside near many "
                                    "bushes.")


def test_text_corpora_read_back_byte_for_byte(dataset_file):
    shakespeare = dataset_file("tinyshakespeare")
    assert tiny_shakespeare(progress=False).encode() == shakespeare.read_bytes()
    assert tiny_shakespeare().startswith("First Citizen:\n")
    test = dataset_file("wikitext-2-raw", "wiki.test.raw")
    assert wikitext2("test", progress=False).encode() == test.read_bytes()
    assert wikitext2("test").startswith(" \n = Robert Boulter = \n")


# ----------------------------------------------------------------------- the conftest helper


def test_dataset_file_skips_with_the_reason_outside_ci_and_fails_under_ci(dataset_file,
                                                                         monkeypatch,
                                                                         tmp_path):
    monkeypatch.setenv("TRANSFORMER_DATA_DIR", str(tmp_path))
    monkeypatch.setitem(DATASETS, "toy", _toy(f"http://127.0.0.1:{_free_port()}/a.txt", GOOD))
    reason = re.escape("toy/a.txt: cannot get it from http://127.0.0.1:")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=reason + r".*put the file by hand at "):
        dataset_file("toy")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=reason):
        dataset_file("toy")


# ---------------------------------------------------------------------- `transformer data`


def test_data_command_lists_datasets_sizes_licences_and_cache_status(tmp_path, monkeypatch,
                                                                     capsys):
    monkeypatch.setenv("TRANSFORMER_DATA_DIR", str(tmp_path))
    (tmp_path / "tinyshakespeare").mkdir()
    (tmp_path / "tinyshakespeare" / "input.txt").write_text("not Shakespeare")
    for argv in (["data"], ["data", "list"]):
        assert main(argv) == 0
        out = capsys.readouterr().out
        assert f"cache directory: {tmp_path} ($TRANSFORMER_DATA_DIR)" in out
        for ds in DATASETS.values():
            assert f"{ds.name}: {ds.description}" in out and ds.licence in out
        assert re.search(r"input.txt +1,115,394 bytes +corrupt", out)
        assert re.search(r"train.de.gz +637,044 bytes +missing", out)
        assert out.count(" missing\n") == sum(len(d.files) for d in DATASETS.values()) - 1
    assert main(["data", "list", "--cache-dir", str(tmp_path / "x")]) == 0
    assert f"cache directory: {tmp_path / 'x'} (--cache-dir)" in capsys.readouterr().out


def test_data_fetch_prints_the_paths(server, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TRANSFORMER_DATA_DIR", str(tmp_path / "unused"))
    monkeypatch.setitem(DATASETS, "toy", _toy(server.serve("/a.txt", GOOD), GOOD))
    assert main(["data", "fetch", "toy", "--cache-dir", str(tmp_path), "--no-progress"]) == 0
    assert capsys.readouterr().out == f"{tmp_path / 'toy' / 'a.txt'}\n"
    assert main(["data", "fetch", "toy", "--file", "a.txt"]) == 0  # with a progress bar
    assert capsys.readouterr().out == f"{tmp_path / 'unused' / 'toy' / 'a.txt'}\n"


def test_data_command_has_help_for_list_and_fetch(capsys):
    for argv, words in [(["data", "--help"], ["list", "fetch", "TRANSFORMER_DATA_DIR"]),
                        (["data", "fetch", "--help"], ["NAME", "--file", "--cache-dir"])]:
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 0
        out = capsys.readouterr().out
        assert all(word in out for word in words), out


@pytest.mark.parametrize(("argv", "expected"), [
    (["data", "fetch", "nope"], "transformer data: error: argument NAME: unknown dataset "
     "'nope' (choose from multi30k, squad-v1.1, tinyshakespeare, wikitext-2-raw)"),
    (["data", "fetch", "multi30k", "--file", "x"], "transformer data: error: argument "
     "--file: multi30k has no file 'x' (choose from train.de.gz, "),
])
def test_data_fetch_of_an_unknown_name_exits_2_with_one_line(cli_error, argv, expected):
    assert cli_error(argv).startswith(expected)


def test_data_fetch_that_fails_exits_1_with_one_line_and_no_traceback(tmp_path, monkeypatch,
                                                                      capsys):
    monkeypatch.setenv("TRANSFORMER_DATA_DIR", str(tmp_path))
    ds = _toy(f"http://127.0.0.1:{_free_port()}/a.txt", GOOD)
    monkeypatch.setitem(DATASETS, "toy", ds)
    assert main(["data", "fetch", "toy"]) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert lines[-1] == "transformer data: error: " + (
        f"toy/a.txt: cannot get it from {ds.files[0].url} (offline or connection refused); put "
        f"the file by hand at {tmp_path / 'toy' / 'a.txt'} (or set TRANSFORMER_DATA_DIR to a "
        "folder holding toy/a.txt)")
    assert sum("error" in line for line in lines) == 1 and "Traceback" not in captured.err
    assert captured.out == "" and _files(tmp_path) == []


@pytest.mark.parametrize(("ci", "outcome"), [("", "1 skipped"), ("true", "1 failed")])
def test_a_book_block_whose_corpus_is_missing_skips_outside_ci_and_fails_under_ci(
        tmp_path, ci, outcome):
    """The repository's root conftest.py turns a DatasetError anywhere (a chapter's code block,
    a notebook) into a skip with its one-line reason, except under CI=true."""
    root = Path(__file__).resolve().parents[1]
    shutil.copy(root / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_block.py").write_text(
        "from transformer.data.datasets import DatasetError\n\n\n"
        "def test_block():\n"
        "    raise DatasetError('demo', 'a.txt', 'http://127.0.0.1:9/a.txt', '/cache/demo/a.txt',"
        " 'offline or connection refused')\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "CI"} | {"CI": ci}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                          str(tmp_path)], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert outcome in run.stdout, run.stdout
    if not ci:
        assert "demo/a.txt: cannot get it from http://127.0.0.1:9/a.txt" in run.stdout
