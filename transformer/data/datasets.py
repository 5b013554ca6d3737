"""The dataset registry: where each corpus comes from, its size and SHA-256, its licence, and a
download cache that verifies what it holds.

::

    from transformer.data.datasets import fetch, multi30k

    path = fetch("tinyshakespeare")          # <cache>/tinyshakespeare/input.txt, verified
    pairs = multi30k("train")                # 29,000 (German, English) sentence pairs

**The cache.** Files live at ``<cache>/<dataset>/<file>``. The cache folder is, in this order,
the ``cache_dir`` argument, the environment variable ``TRANSFORMER_DATA_DIR``, or
``pooch.os_cache("executable-transformer")`` (``~/.cache/executable-transformer`` on Linux).
A folder that already holds the files (copied by hand, or restored by a CI) is used as it is.

**Verification.** A file is used only once its SHA-256 equals the registry's. The first use
hashes it and writes a small stamp beside it, ``.<file>.verified`` (the SHA-256, the size and
the modification time, in JSON); later calls compare only the size and the time, so they do not
re-hash megabytes. A file that no longer matches its stamp is hashed again, and one that fails
the check is removed and downloaded again.

**Downloads** go through ``pooch``: into a temporary file in the same folder, verified, then
renamed into place, so a failed or interrupted download leaves nothing behind. A file that exists
upstream only inside an archive (WikiText-2) is taken from the archive, which is verified first
and kept in the cache as ``<cache>/<dataset>/<archive>``, so that the other members need no second
download; the member is written through a temporary file and verified too.

**Errors.** Every failure raises :class:`DatasetError`, whose first line names the file, the URL,
the cause (offline or refused, an HTTP status, a checksum mismatch, an interrupted transfer) and
the full path where the file can be put by hand.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import logging
import os
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ENV_VAR = "TRANSFORMER_DATA_DIR"
APP_NAME = "executable-transformer"


class DatasetError(OSError):
    """A registered file could not be had: its first line says which file, from which URL, why,
    and where to put it by hand; a second line gives the details."""

    def __init__(self, dataset: str, file: str, url: str, path: Path, cause: str,
                 details: str = "") -> None:
        self.dataset, self.file, self.url, self.path = dataset, file, url, Path(path)
        self.cause, self.details = cause, details
        message = (f"{dataset}/{file}: cannot get it from {url} ({cause}); put the file by hand "
                   f"at {path} (or set {ENV_VAR} to a folder holding {dataset}/{file})")
        super().__init__(message + (f"\n{details}" if details else ""))

    def __reduce__(self):  # picklable (e.g. raised in a DataLoader worker)
        return (type(self), (self.dataset, self.file, self.url, self.path, self.cause,
                             self.details))


# --------------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Archive:
    """An archive that holds registered files upstream (downloaded whole, verified, kept)."""

    name: str  # its file name in the cache folder of the dataset
    size: int | None  # bytes; None where unknown
    sha256: str


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset: where it is downloaded from and what it must hash to.

    ``url`` serves the file itself, or, when ``archive`` is set, the archive, from which the
    file is the member ``member``. ``size`` and ``sha256`` are those of the file (the member).
    """

    name: str
    url: str
    size: int | None  # bytes; None where unknown
    sha256: str
    archive: Archive | None = None
    member: str | None = None

    def __post_init__(self) -> None:
        if (self.archive is None) != (self.member is None):
            raise ValueError(f"RemoteFile {self.name!r}: archive and member go together, got "
                             f"archive={self.archive!r}, member={self.member!r}")


@dataclass(frozen=True)
class Dataset:
    """A registered corpus: its files, its licence and where it is described."""

    name: str
    description: str
    files: tuple[RemoteFile, ...]
    licence: str
    homepage: str
    note: str = ""

    def file(self, name: str) -> RemoteFile:
        """The registered file ``name``; ``ValueError`` listing the valid names otherwise."""
        for remote in self.files:
            if remote.name == name:
                return remote
        raise ValueError(f"dataset {self.name!r} has no file {name!r}; its files: "
                         f"{', '.join(f.name for f in self.files)}")


# --8<-- [start:multi30k]
_MULTI30K_URL = "https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/raw/"


def _multi30k(name: str, size: int, sha256: str) -> RemoteFile:
    return RemoteFile(name, _MULTI30K_URL + name, size, sha256)


MULTI30K = Dataset(
    name="multi30k",
    description="Multi30k task 1: German-English image captions (Elliott et al., 2016), "
    "29,000 / 1,014 / 1,000 sentence pairs (train / val / test_2016_flickr)",
    files=(
        _multi30k("train.de.gz", 637_044,
                  "726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6"),
        _multi30k("train.en.gz", 568_929,
                  "d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f"),
        _multi30k("val.de.gz", 24_681,
                  "f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a"),
        _multi30k("val.en.gz", 21_650,
                  "14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28"),
        _multi30k("test_2016_flickr.de.gz", 22_890,
                  "9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8"),
        _multi30k("test_2016_flickr.en.gz", 21_077,
                  "611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9"),
    ),
    licence="no licence file; the upstream README allows non-commercial research and "
    "educational use (captions partly derived from Flickr30K, Flickr Terms of Use)",
    homepage="https://github.com/multi30k/dataset",
    note="gzipped UTF-8, one sentence per line; line i of .de and .en is one pair",
)
# --8<-- [end:multi30k]

_SQUAD_URL = "https://rajpurkar.github.io/SQuAD-explorer/dataset/"
_WIKITEXT2_URL = "https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-2-raw-v1.zip"
_WIKITEXT2_ZIP = Archive(
    "wikitext-2-raw-v1.zip", 4_721_645,
    "ef7edb566e3e2b2d31b29c1fdb0c89a4cc683597484c3dc2517919c615435a11")


def _wikitext2(name: str, size: int, sha256: str) -> RemoteFile:
    return RemoteFile(name, _WIKITEXT2_URL, size, sha256, archive=_WIKITEXT2_ZIP,
                      member=f"wikitext-2-raw/{name}")


TINY_SHAKESPEARE = Dataset(
    name="tinyshakespeare",
    description="Tiny Shakespeare: 1,115,394 bytes of Shakespeare's plays, the corpus of "
    "char-rnn and nanoGPT",
    files=(RemoteFile(
        "input.txt",
        "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/"
        "input.txt",
        1_115_394, "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"),),
    licence="public domain (Shakespeare's text); collected in karpathy/char-rnn (MIT)",
    homepage="https://github.com/karpathy/char-rnn",
    note="plain ASCII text, one file; split it into train and validation yourself",
)

WIKITEXT2_RAW = Dataset(
    name="wikitext-2-raw",
    description="WikiText-2, raw: Wikipedia Good and Featured articles, untokenized "
    "(Merity et al., 2016, 'Pointer Sentinel Mixture Models')",
    files=(
        _wikitext2("wiki.train.raw", 10_940_747,
                   "6707892fa3788b5ab9ed78ab5ff37d9fe825f6011a2ad4fcd6a6d467f0e7da57"),
        _wikitext2("wiki.valid.raw", 1_146_846,
                   "4cd0f6876d07a413aa911261ff6d363c72d757d47f0fdd6015702014c89cb9c7"),
        _wikitext2("wiki.test.raw", 1_290_590,
                   "173c87a53759e0201f33e0ccf978e510c2042d7f2cb78229d9a50d79b9e7dd08"),
    ),
    licence="CC BY-SA 3.0 (Creative Commons Attribution-ShareAlike), and GFDL: the "
    "licences of Wikipedia's text",
    homepage="https://arxiv.org/abs/1609.07843",
    note="upstream publishes only the archive wikitext-2-raw-v1.zip; each file is extracted "
    "from it, and the archive stays in the cache for the other two",
)

SQUAD_V1_1 = Dataset(
    name="squad-v1.1",
    description="SQuAD v1.1: questions on Wikipedia paragraphs whose answers are spans of "
    "the paragraph (Rajpurkar et al., 2016)",
    files=(
        RemoteFile("train-v1.1.json", _SQUAD_URL + "train-v1.1.json", 30_288_272,
                   "3527663986b8295af4f7fcdff1ba1ff3f72d07d61a20f487cb238a6ef92fd955"),
        RemoteFile("dev-v1.1.json", _SQUAD_URL + "dev-v1.1.json", 4_854_279,
                   "95aa6a52d5d6a735563366753ca50492a658031da74f301ac5238b03966972c9"),
    ),
    licence="CC BY-SA 4.0",
    homepage="https://rajpurkar.github.io/SQuAD-explorer/",
    note="JSON; the size and SHA-256 of train-v1.1.json are those public code records "
    "(torchtext, ParlAI)",
)

#: Every registered dataset, by name (the folder name in the cache).
DATASETS: dict[str, Dataset] = {
    d.name: d for d in (MULTI30K, TINY_SHAKESPEARE, WIKITEXT2_RAW, SQUAD_V1_1)}


def _dataset(dataset: str | Dataset) -> Dataset:
    if isinstance(dataset, Dataset):
        return dataset
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; registered: {', '.join(sorted(DATASETS))}")
    return DATASETS[dataset]


# ------------------------------------------------------------------------------------ cache


def cache_dir(path: str | os.PathLike[str] | None = None) -> Path:
    """The folder of the download cache: ``path`` if given, else ``$TRANSFORMER_DATA_DIR`` if
    set and not empty, else ``pooch.os_cache("executable-transformer")``. Files live at
    ``<cache>/<dataset>/<file>``. The folder need not exist yet."""
    if path is None:
        path = os.environ.get(ENV_VAR) or None
    if path is None:
        import pooch

        path = pooch.os_cache(APP_NAME)
    return Path(path).expanduser().absolute()


_cache_dir = cache_dir  # for the functions whose `cache_dir` argument hides it


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _stamp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.verified")


def _stamp(path: Path, sha256: str) -> dict[str, object]:
    st = path.stat()
    return {"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _write_atomically(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def _check(path: Path, sha256: str, size: int | None) -> str:
    """``"ok"``, ``"missing"`` or ``"corrupt"``; hashes only when the stamp does not vouch."""
    if not path.is_file():
        return "missing"
    if size is not None and path.stat().st_size != size:
        return "corrupt"
    stamp = _stamp_path(path)
    try:
        if json.loads(stamp.read_text(encoding="utf-8")) == _stamp(path, sha256):
            return "ok"
    except (OSError, ValueError):
        pass  # no stamp yet, or an unreadable one: hash
    if _sha256(path) != sha256:
        return "corrupt"
    with contextlib.suppress(OSError):  # a read-only cache still works, it only re-hashes
        _write_atomically(stamp, json.dumps(_stamp(path, sha256)).encode())
    return "ok"


def _remove(path: Path) -> None:
    for p in (path, _stamp_path(path)):
        p.unlink(missing_ok=True)


@contextlib.contextmanager
def _pooch_quiet(quiet: bool) -> Iterator[None]:
    """Silence pooch's "Downloading data from ..." line when there is no progress bar either."""
    import pooch

    logger = pooch.get_logger()  # not in logging's registry: logging.getLogger would miss it
    level = logger.level
    if quiet:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _cause(err: BaseException) -> str:
    """A short reason for a failed download, in the reader's words."""
    import requests

    if isinstance(err, requests.exceptions.HTTPError) and err.response is not None:
        return f"HTTP {err.response.status_code} {err.response.reason}"
    if isinstance(err, requests.exceptions.Timeout):
        return "timed out: the server did not answer"
    if isinstance(err, (requests.exceptions.ChunkedEncodingError,
                        requests.exceptions.ContentDecodingError)):
        return "interrupted: the connection closed before the whole file arrived"
    if isinstance(err, requests.exceptions.ConnectionError):
        return "offline or connection refused"
    if isinstance(err, ValueError) and "hash" in str(err).lower():
        return "checksum mismatch: the downloaded bytes do not have the registered SHA-256"
    if isinstance(err, PermissionError):
        return "the cache folder is not writable"
    return f"{type(err).__name__}: {err}"


def _download(url: str, path: Path, sha256: str, progress: bool) -> None:
    """Download ``url`` to ``path`` through a verified temporary file (pooch)."""
    import pooch

    with _pooch_quiet(not progress):
        pooch.retrieve(url, known_hash=f"sha256:{sha256}", fname=path.name, path=path.parent,
                       downloader=pooch.HTTPDownloader(progressbar=progress))
    _check(path, sha256, None)  # stamp it, so the next call does not hash it again


def _extract(archive: Path, member: str, path: Path, sha256: str) -> None:
    """Write ``member`` of the zip ``archive`` to ``path``, verified, through a temporary file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, zipfile.ZipFile(archive) as zf, zf.open(member) as src:
            for block in iter(lambda: src.read(1 << 20), b""):
                out.write(block)
        got = _sha256(Path(tmp))
        if got != sha256:
            raise ValueError(f"member {member} of {archive.name} has SHA-256 {got}, the "
                             f"registry expects {sha256} (hash mismatch)")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    _check(path, sha256, None)


def _ensure(ds: Dataset, remote: RemoteFile, root: Path, progress: bool) -> Path:
    path = root / ds.name / remote.name
    state = _check(path, remote.sha256, remote.size)
    if state == "ok":
        return path
    note = ""
    created = [p for p in (path.parent, *path.parent.parents) if not p.exists()]
    try:
        if state == "corrupt":
            _remove(path)
            note = "the cached copy did not match its SHA-256 and was removed; "
        path.parent.mkdir(parents=True, exist_ok=True)
        if remote.archive is None:
            _download(remote.url, path, remote.sha256, progress)
        else:
            archive = path.with_name(remote.archive.name)
            if _check(archive, remote.archive.sha256, remote.archive.size) != "ok":
                _remove(archive)
                _download(remote.url, archive, remote.archive.sha256, progress)
            _extract(archive, remote.member or "", path, remote.sha256)
    except Exception as err:
        for folder in created:  # leave the cache as it was: no empty folders either
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if still empty
        expected = f"expected SHA-256 {remote.sha256}" + (
            f", {remote.size:,} bytes" if remote.size is not None else "")
        if remote.archive is not None:
            expected += (f"; or put {remote.archive.name} (sha256 {remote.archive.sha256}) at "
                         f"{path.with_name(remote.archive.name)}")
        raise DatasetError(ds.name, remote.name, remote.url, path, _cause(err),
                           f"{note}{expected}; {type(err).__name__}: {err}") from err
    return path


# ---------------------------------------------------------------------------------- public


def fetch(dataset: str | Dataset, file: str | None = None, *,
          cache_dir: str | os.PathLike[str] | None = None, progress: bool = True) -> Path:
    """The local path of one registered file, downloaded and verified (SHA-256) if needed.

    Args:
        dataset: a name of ``DATASETS`` (or a ``Dataset``).
        file: the file's name; may be left out when the dataset has a single file.
        cache_dir: the cache folder (default: see ``cache_dir()``).
        progress: show a progress bar while downloading.

    Raises:
        ValueError: unknown dataset or file name (the message lists the valid ones).
        DatasetError: the file is not cached and cannot be downloaded, or the download does
            not verify; the message says where to put the file by hand.
    """
    ds = _dataset(dataset)
    if file is None:
        if len(ds.files) != 1:
            raise ValueError(f"dataset {ds.name!r} has {len(ds.files)} files, name one with "
                             f"file=: {', '.join(f.name for f in ds.files)}")
        file = ds.files[0].name
    return _ensure(ds, ds.file(file), _cache_dir(cache_dir), progress)


def fetch_all(dataset: str | Dataset, *, cache_dir: str | os.PathLike[str] | None = None,
              progress: bool = True) -> dict[str, Path]:
    """Every file of ``dataset`` (see ``fetch``), as ``{file name: local path}``.

    Raises:
        ValueError: unknown dataset name.
        DatasetError: the first file that cannot be had.
    """
    ds = _dataset(dataset)
    return {f.name: fetch(ds, f.name, cache_dir=cache_dir, progress=progress) for f in ds.files}


def status(dataset: str | Dataset,
           cache_dir: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """What the cache holds of ``dataset``: ``{file name: "ok" | "missing" | "corrupt"}``.
    Downloads nothing; a file seen for the first time is hashed (then stamped).

    Raises:
        ValueError: unknown dataset name.
    """
    ds = _dataset(dataset)
    root = _cache_dir(cache_dir)
    return {f.name: _check(root / ds.name / f.name, f.sha256, f.size) for f in ds.files}


# ---------------------------------------------------------------------------------- readers


def _open_text(path: Path):
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    if gzipped:
        return gzip.open(path, "rt", encoding="utf-8", newline="\n")
    return open(path, encoding="utf-8", newline="\n")


def _lines(path: Path) -> list[str]:
    with _open_text(path) as f:
        return [line.removesuffix("\n").removesuffix("\r") for line in f]


def read_parallel(src_path: str | os.PathLike[str],
                  tgt_path: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """Sentence pairs from two line-aligned files (gzipped or plain UTF-8): line i of each.

    Returns:
        ``[(source line, target line), ...]`` with the line ends stripped.

    Raises:
        ValueError: the files have different numbers of lines (both files and counts named).
    """
    src, tgt = _lines(Path(src_path)), _lines(Path(tgt_path))
    if len(src) != len(tgt):
        raise ValueError(f"read_parallel: {src_path} has {len(src):,} lines but {tgt_path} has "
                         f"{len(tgt):,}; line-aligned files must have as many")
    return list(zip(src, tgt, strict=True))


def _split(split: str, splits: dict[str, str], what: str) -> str:
    if split not in splits:
        raise ValueError(f"{what}: unknown split {split!r}; splits: {', '.join(splits)}")
    return splits[split]


_MULTI30K_SPLITS = {"train": "train", "val": "val", "test": "test_2016_flickr"}
_WIKITEXT2_SPLITS = {"train": "wiki.train.raw", "valid": "wiki.valid.raw",
                     "test": "wiki.test.raw"}


def multi30k(split: str, *, cache_dir: str | os.PathLike[str] | None = None,
             progress: bool = True) -> list[tuple[str, str]]:
    """Multi30k task 1 (Elliott et al., 2016): ``(German, English)`` caption pairs.

    Args:
        split: ``"train"`` (29,000 pairs), ``"val"`` (1,014) or ``"test"`` (1,000,
            test_2016_flickr).

    Raises:
        ValueError: unknown split. DatasetError: see ``fetch``.
    """
    stem = _split(split, _MULTI30K_SPLITS, "multi30k")
    de, en = (fetch("multi30k", f"{stem}.{lang}.gz", cache_dir=cache_dir, progress=progress)
              for lang in ("de", "en"))
    return read_parallel(de, en)


def _read_text(path: Path) -> str:
    with open(path, encoding="utf-8", newline="") as f:  # newline="": the bytes as they are
        return f.read()


def tiny_shakespeare(*, cache_dir: str | os.PathLike[str] | None = None,
                     progress: bool = True) -> str:
    """The Tiny Shakespeare corpus (char-rnn's ``input.txt``), as one string.

    Raises:
        DatasetError: see ``fetch``.
    """
    return _read_text(fetch("tinyshakespeare", "input.txt", cache_dir=cache_dir,
                            progress=progress))


def wikitext2(split: str, *, cache_dir: str | os.PathLike[str] | None = None,
              progress: bool = True) -> str:
    """WikiText-2, raw (Merity et al., 2016): one split as one string.

    Args:
        split: ``"train"``, ``"valid"`` or ``"test"``.

    Raises:
        ValueError: unknown split. DatasetError: see ``fetch``.
    """
    name = _split(split, _WIKITEXT2_SPLITS, "wikitext2")
    return _read_text(fetch("wikitext-2-raw", name, cache_dir=cache_dir, progress=progress))
