"""fusedlstm.utils.get_file: Keras 3.15.1's cache layout and hash rules, atomic downloads, safe extraction.

Never a real network: files come from an http.server on 127.0.0.1 in a thread, or
from file:// URLs. Where Keras can run the same call (it can: get_file is plain
Python), the paths it returns and the files it leaves are compared with ours.
"""

import functools
import hashlib
import http.server
import io
import os
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest

from conftest import require

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")
from fusedlstm import download
from fusedlstm.utils import get_file

PAYLOAD = b"fusedlstm test payload\n" * 1000


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def md5(data):
    return hashlib.md5(data).hexdigest()


class _Handler(http.server.SimpleHTTPRequestHandler):
    hits = None  # shared list of paths requested
    lie_about_length = False

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        self.hits.append(self.path)
        if self.path.startswith("/truncated"):
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD) + 100))
            self.end_headers()
            self.wfile.write(PAYLOAD[:1000])
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()


@pytest.fixture
def server(tmp_path):
    """(base URL, served folder, list of requested paths) of a server on 127.0.0.1."""
    root = tmp_path / "served"
    root.mkdir()
    hits = []
    handler = functools.partial(type("H", (_Handler,), {"hits": hits}), directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", root, hits
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh KERAS_HOME (the real ~/.keras is never touched)."""
    h = tmp_path / "keras_home"
    monkeypatch.setenv("KERAS_HOME", str(h))
    return h


def leftovers(folder):
    """Temporary files or folders a download or extraction may have left."""
    return [p.name for p in Path(folder).rglob("*") if p.name.startswith(".")]


# ---- download and cache --------------------------------------------------------------

def test_downloads_into_keras_home_once(server, home, capsys):
    url, root, hits = server
    (root / "data.bin").write_bytes(PAYLOAD)
    path = get_file("data.bin", origin=f"{url}/data.bin", file_hash=sha256(PAYLOAD))
    assert Path(path) == home / "datasets" / "data.bin"
    assert Path(path).read_bytes() == PAYLOAD
    assert "Downloading data from" in capsys.readouterr().out
    again = get_file("data.bin", origin=f"{url}/data.bin", file_hash=sha256(PAYLOAD))
    assert again == path and hits == ["/data.bin"], "a cached file with a matching hash is not fetched again"
    assert leftovers(home) == []


def test_default_home_is_dot_keras_when_keras_home_is_unset(monkeypatch, tmp_path):
    monkeypatch.delenv("KERAS_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert download.keras_home() == str(tmp_path / ".keras")


def test_file_url_and_name_from_origin(tmp_path, home):
    src = tmp_path / "source.txt"
    src.write_bytes(PAYLOAD)
    path = get_file(origin=src.as_uri())
    assert Path(path) == home / "datasets" / "source.txt" and Path(path).read_bytes() == PAYLOAD


def test_cache_dir_and_absolute_cache_subdir(tmp_path, server):
    url, root, _ = server
    (root / "a.txt").write_bytes(b"abc")
    p1 = get_file("a.txt", f"{url}/a.txt", cache_dir=tmp_path / "c", cache_subdir="sub")
    assert Path(p1) == tmp_path / "c" / "sub" / "a.txt"
    p2 = get_file("a.txt", f"{url}/a.txt", cache_dir=tmp_path / "c", cache_subdir=str(tmp_path / "abs"))
    assert Path(p2) == tmp_path / "abs" / "a.txt"


@pytest.mark.parametrize("algorithm, digest", [("auto", sha256), ("sha256", sha256), ("md5", md5), ("auto", md5)])
def test_hash_algorithms(server, home, algorithm, digest):
    url, root, _ = server
    (root / "f").write_bytes(PAYLOAD)
    path = get_file("f", f"{url}/f", file_hash=digest(PAYLOAD), hash_algorithm=algorithm)
    assert Path(path).read_bytes() == PAYLOAD


def test_md5_hash_argument(server, home):
    url, root, _ = server
    (root / "f").write_bytes(PAYLOAD)
    assert Path(get_file("f", f"{url}/f", md5_hash=md5(PAYLOAD))).read_bytes() == PAYLOAD
    with pytest.raises(ValueError, match="md5"):
        get_file("g", f"{url}/f", md5_hash=md5(b"other"))


def test_wrong_hash_leaves_no_file(server, home):
    url, root, _ = server
    (root / "f").write_bytes(PAYLOAD)
    with pytest.raises(ValueError, match="Incomplete or corrupted file detected"):
        get_file("f", f"{url}/f", file_hash=sha256(b"something else"))
    assert not (home / "datasets" / "f").exists()
    assert leftovers(home) == []


def test_stale_cached_file_is_downloaded_again(server, home, capsys):
    url, root, hits = server
    (root / "f").write_bytes(PAYLOAD)
    (home / "datasets").mkdir(parents=True)
    (home / "datasets" / "f").write_bytes(b"half a file")
    path = get_file("f", f"{url}/f", file_hash=sha256(PAYLOAD))
    assert Path(path).read_bytes() == PAYLOAD and hits == ["/f"]
    assert "file hash does not match" in capsys.readouterr().out


def test_cached_file_without_hash_is_trusted_and_force_download_fetches(server, home):
    url, root, hits = server
    (root / "f").write_bytes(PAYLOAD)
    (home / "datasets").mkdir(parents=True)
    (home / "datasets" / "f").write_bytes(b"old")
    assert Path(get_file("f", f"{url}/f")).read_bytes() == b"old" and hits == []
    assert Path(get_file("f", f"{url}/f", force_download=True)).read_bytes() == PAYLOAD and hits == ["/f"]


def test_http_error_names_the_url_and_leaves_nothing(server, home):
    url, _, _ = server
    with pytest.raises(OSError, match=r"URL fetch failure on .*/missing: 404"):
        get_file("missing", f"{url}/missing")
    assert not (home / "datasets" / "missing").exists() and leftovers(home) == []


def test_truncated_download_is_refused_and_leaves_nothing(server, home):
    url, _, _ = server
    with pytest.raises(OSError):
        get_file("t", f"{url}/truncated")
    assert not (home / "datasets" / "t").exists() and leftovers(home) == []


def test_truncated_download_keeps_the_previous_file(server, home):
    url, _, _ = server
    (home / "datasets").mkdir(parents=True)
    (home / "datasets" / "t").write_bytes(b"previous")
    with pytest.raises(OSError):
        get_file("t", f"{url}/truncated", force_download=True)
    assert (home / "datasets" / "t").read_bytes() == b"previous"


@pytest.mark.parametrize("kwargs, exc, pattern", [
    (dict(fname="a.txt"), ValueError, "origin"),
    (dict(fname="a.txt", origin=5), TypeError, "origin"),
    (dict(fname=os.path.join("sub", "a.txt"), origin="http://127.0.0.1:9/a.txt"), ValueError, "cache_dir"),
    (dict(fname="..", origin="http://127.0.0.1:9/a.txt"), ValueError, "fname"),
    (dict(origin="http://127.0.0.1:9/"), ValueError, "fname"),
    (dict(fname="a", origin="http://127.0.0.1:9/a", hash_algorithm="sha1"), ValueError, "hash_algorithm"),
])
def test_bad_arguments(home, kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        get_file(**kwargs)


# ---- extraction ------------------------------------------------------------------------

def make_tar(path, members, mode="w:gz"):
    """members: (name, bytes | None for a folder) or a TarInfo factory."""
    with tarfile.open(path, mode) as tar:
        for m in members:
            if callable(m):
                tar.addfile(m())
                continue
            name, data = m
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


def make_zip(path, members):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members:
            z.writestr(name, data)


GOOD = [("pkg", None), ("pkg/a.txt", b"alpha"), ("pkg/sub/b.txt", b"beta")]


@pytest.mark.parametrize("archive", ["tar.gz", "tar", "zip"])
@pytest.mark.parametrize("naming", ["fname-with-ext", "fname-plain", "no-fname"])
@pytest.mark.keras
def test_extract_layout_matches_keras(server, tmp_path, archive, naming):
    """Keras and we, same server, same arguments: same returned path (relative to the cache)
    and the same files under it."""
    keras = _keras()
    url, root, _ = server
    src = root / f"data.{archive}"
    (make_zip(src, [(n, d) for n, d in GOOD if d is not None]) if archive == "zip"
     else make_tar(src, GOOD, "w:gz" if archive == "tar.gz" else "w"))
    fname = {"fname-with-ext": f"data.{archive}", "fname-plain": "data", "no-fname": None}[naming]
    ours_dir, keras_dir = tmp_path / "ours", tmp_path / "keras"
    keras_dir.mkdir()  # Keras falls back to /tmp/.keras for a cache_dir that does not exist yet
    kw = dict(fname=fname, origin=f"{url}/data.{archive}", extract=True)
    ours = Path(get_file(cache_dir=ours_dir, **kw))
    theirs = Path(keras.utils.get_file(cache_dir=str(keras_dir), **kw))
    assert ours.relative_to(ours_dir) == theirs.relative_to(keras_dir)
    files = lambda d: sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.is_file())  # noqa: E731
    assert files(ours_dir) == files(keras_dir)
    assert (ours / "pkg" / "sub" / "b.txt").read_bytes() == b"beta"


def test_untar_and_reuse_of_the_extracted_folder(server, home):
    url, root, hits = server
    make_tar(root / "d.tar.gz", GOOD)
    out = Path(get_file("d", f"{url}/d.tar.gz", untar=True))
    assert out == home / "datasets" / "d" and (out / "pkg" / "a.txt").read_bytes() == b"alpha"
    (out / "pkg" / "a.txt").write_bytes(b"edited")
    assert Path(get_file("d", f"{url}/d.tar.gz", untar=True)) == out
    assert (out / "pkg" / "a.txt").read_bytes() == b"edited", "a present extraction is reused"
    get_file("d", f"{url}/d.tar.gz", untar=True, force_download=True)
    assert (out / "pkg" / "a.txt").read_bytes() == b"alpha", "a new download is extracted again"
    assert hits == ["/d.tar.gz", "/d.tar.gz"] and leftovers(home) == []


def _sym(name, target):
    def make():
        info = tarfile.TarInfo(name)
        info.type, info.linkname = tarfile.SYMTYPE, target
        return info
    return make


def _hard(name, target):
    def make():
        info = tarfile.TarInfo(name)
        info.type, info.linkname = tarfile.LNKTYPE, target
        return info
    return make


def _device(name):
    def make():
        info = tarfile.TarInfo(name)
        info.type = tarfile.CHRTYPE
        return info
    return make


UNSAFE_TAR = {
    "parent": [("../evil.txt", b"x")],
    "nested-parent": [("pkg/../../evil.txt", b"x")],
    "absolute": [("/tmp/fusedlstm-evil.txt", b"x")],
    "symlink-absolute": [_sym("pkg/link", "/etc/passwd")],
    "symlink-parent": [("pkg", None), _sym("pkg/link", "../../outside")],
    "hardlink-outside": [_hard("pkg/hard", "../outside")],
    "device": [_device("pkg/dev")],
}


@pytest.mark.parametrize("case", list(UNSAFE_TAR))
def test_unsafe_tar_is_refused_before_anything_is_written(server, home, tmp_path, case):
    url, root, _ = server
    make_tar(root / "bad.tar", GOOD + UNSAFE_TAR[case], "w")
    with pytest.raises(ValueError, match="Refusing to extract the tar archive"):
        get_file("bad", f"{url}/bad.tar", extract=True)
    assert not (home / "datasets" / "bad").exists(), "nothing may be extracted from a refused archive"
    assert not (home / "evil.txt").exists() and not (home / "datasets" / "evil.txt").exists()
    assert not Path("/tmp/fusedlstm-evil.txt").exists()
    assert leftovers(home) == []


@pytest.mark.parametrize("name", ["../evil.txt", "/abs/evil.txt", "pkg/../../evil.txt"])
def test_unsafe_zip_is_refused(server, home, name):
    url, root, _ = server
    make_zip(root / "bad.zip", [("pkg/a.txt", b"a"), (name, b"x")])
    with pytest.raises(ValueError, match="Refusing to extract the zip archive"):
        get_file("bad", f"{url}/bad.zip", extract=True)
    assert not (home / "datasets" / "bad").exists() and leftovers(home) == []


def test_links_inside_the_folder_are_kept(server, home):
    url, root, _ = server
    make_tar(root / "l.tar", GOOD + [_sym("pkg/link", "a.txt")], "w")
    out = Path(get_file("l", f"{url}/l.tar", extract=True))
    assert (out / "pkg" / "link").is_symlink() and (out / "pkg" / "link").read_bytes() == b"alpha"


def test_archive_larger_than_the_bound_is_refused(server, home, monkeypatch):
    url, root, _ = server
    make_tar(root / "big.tar", GOOD, "w")
    monkeypatch.setattr(download, "MAX_EXTRACT_BYTES", 8)
    with pytest.raises(ValueError, match="unpacks to more than 8 bytes"):
        get_file("big", f"{url}/big.tar", extract=True)
    monkeypatch.setattr(download, "MAX_EXTRACT_BYTES", 1 << 30)
    monkeypatch.setattr(download, "MAX_EXTRACT_MEMBERS", 2)
    with pytest.raises(ValueError, match="more than 2 members"):
        get_file("big", f"{url}/big.tar", extract=True, force_download=True)


@pytest.mark.parametrize("mode", ["w:gz", "w:bz2", "w:xz"])
def test_damaged_compressed_tar_is_refused_at_every_cut(tmp_path, mode):
    # Found by the loader fuzzer: is_tarfile itself raised EOFError on a gzip header cut inside
    # its extra field. Every prefix of a compressed tar is refused or not matched, never a raw error.
    make_tar(tmp_path / "a.tar", GOOD, mode)
    blob = (tmp_path / "a.tar").read_bytes()
    header = b"\x1f\x8b\x08\x04" + bytes(6) + (500).to_bytes(2, "little") + b"xx"  # FEXTRA longer than the file
    for k, cut in enumerate([header] + [blob[:n] for n in range(1, len(blob), max(1, len(blob) // 40))]):
        (tmp_path / "cut.tar").write_bytes(cut)
        try:
            extracted = download.extract_archive(tmp_path / "cut.tar", tmp_path / f"out{k}")
        except ValueError as exc:
            assert "cut.tar" in str(exc)
        else:
            assert not extracted or (tmp_path / f"out{k}").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == [], "no leftover temp folders"


def test_archive_format_choices(server, home):
    url, root, _ = server
    make_zip(root / "z.zip", [("a.txt", b"a")])
    with pytest.warns(UserWarning, match="Could not extract archive"):
        get_file("z1", f"{url}/z.zip", extract=True, archive_format="tar")
    with pytest.warns(UserWarning, match="Could not extract archive"):
        get_file("z2", f"{url}/z.zip", extract=True, archive_format=None)
    assert (Path(get_file("z3", f"{url}/z.zip", extract=True, archive_format=["zip"])) / "a.txt").exists()
    with pytest.raises(ValueError, match="archive_format"):
        get_file("z4", f"{url}/z.zip", extract=True, archive_format="rar")


def _keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    require("torch", "compare")
    return require("keras", "compare")


@pytest.mark.keras
@pytest.mark.parametrize("extract", [False, True])
def test_keras_and_we_share_one_cache(server, tmp_path, extract):
    """A file Keras downloaded is found by us without a download, and the reverse."""
    keras = _keras()
    url, root, hits = server
    make_tar(root / "shared.tar.gz", GOOD)
    digest = sha256((root / "shared.tar.gz").read_bytes())
    kw = dict(fname="shared.tar.gz", origin=f"{url}/shared.tar.gz", file_hash=digest, cache_dir=str(tmp_path),
              extract=extract)
    theirs = keras.utils.get_file(**kw)
    assert theirs.startswith(str(tmp_path))
    assert get_file(**kw) == theirs and hits == ["/shared.tar.gz"]
    kw["fname"] = "other.tar.gz"
    ours = get_file(**kw)
    assert keras.utils.get_file(**kw) == ours and hits == ["/shared.tar.gz", "/shared.tar.gz"]
