"""`get_file` (keras.utils.get_file): download once into a cache, check the hash, extract safely.

Keras 3.15.1's signature, cache layout and file names, so files Keras downloaded
are found where Keras put them (`$KERAS_HOME/datasets/imdb.npz`, or
`~/.keras/datasets/imdb.npz`) and the reverse. Where fusedlstm goes further:

* the download streams into a temporary file beside the target, hashed on the way,
  and is renamed over the target only when complete and matching `file_hash`: an
  interrupted or corrupted download never leaves a file that a later call would
  take for the real one;
* extraction checks every member before writing anything: absolute paths, `..`
  components, links pointing outside the extraction folder, device files and
  archives larger than MAX_EXTRACT_BYTES / MAX_EXTRACT_MEMBERS, zip members that
  inflate past 100x their stored size above 64 MiB, duplicate or encrypted zip
  members are refused with a ValueError naming the member (Keras skips unsafe
  members with a warning); a damaged archive is a ValueError too, and
  the archive is extracted into a temporary folder renamed into place at the end;
* an existing extraction folder is reused unless the archive was downloaded again
  (Keras extracts on every call).

Progress goes to a tqdm bar when tqdm is installed, else nowhere.
"""

import errno
import hashlib
import lzma
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import warnings
import zipfile
import zlib

from . import untrusted
from .atomic import atomic_path

__all__ = ["get_file", "keras_home", "hash_file", "validate_file", "extract_archive",
           "MAX_EXTRACT_BYTES", "MAX_EXTRACT_MEMBERS"]

MAX_EXTRACT_BYTES = 64 << 30      # what an archive may unpack to (a zip bomb stops here)
MAX_EXTRACT_MEMBERS = 1_000_000   # entries an archive may hold
_CHUNK = 1 << 16


def keras_home():
    """Keras's cache root: $KERAS_HOME, else ~/.keras (/tmp/.keras when the home folder
    is not writable), read at each call."""
    if "KERAS_HOME" in os.environ:
        return os.environ["KERAS_HOME"]
    base = os.path.expanduser("~")
    if not os.access(base, os.W_OK):
        base = "/tmp"
    return os.path.join(base, ".keras")


def _hasher(algorithm, file_hash=None):
    """keras resolve_hasher: sha256 when asked or when 'auto' sees a 64-digit hash, else md5."""
    if algorithm == "sha256" or (algorithm == "auto" and file_hash is not None and len(file_hash) == 64):
        return hashlib.sha256()
    return hashlib.md5()


def hash_file(fpath, algorithm="sha256", chunk_size=65535):
    """The hex digest of a file ("sha256", "md5" or "auto" = sha256)."""
    hasher = _hasher(algorithm) if isinstance(algorithm, str) else algorithm
    with open(fpath, "rb") as fh:
        for chunk in iter(lambda: fh.read(chunk_size), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def validate_file(fpath, file_hash, algorithm="auto", chunk_size=65535):
    """Whether the file's sha256/md5 digest is `file_hash`."""
    return str(hash_file(fpath, _hasher(algorithm, file_hash), chunk_size)) == str(file_hash)


def _check_algorithm(hash_algorithm):
    if hash_algorithm not in ("auto", "sha256", "md5"):
        raise ValueError("Received an invalid value for argument `hash_algorithm`, expected 'auto', 'sha256' or "
                         f"'md5', got {hash_algorithm!r}.")


# ---------------------------------------------------------------------------
# Download
# ---------------------------------------------------------------------------

def _progress(total):
    try:
        from tqdm.auto import tqdm  # optional: progress only when installed
    except ImportError:
        return None
    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, leave=False, file=sys.stderr)


def _download(origin, target, file_hash, hash_algorithm):
    """origin -> target through a temporary file; the hash is checked before the rename."""
    hasher = _hasher(hash_algorithm, file_hash) if file_hash is not None else None
    try:
        response = urllib.request.urlopen(origin)  # noqa: S310 (any scheme urllib knows, file:// included)
    except urllib.error.HTTPError as e:
        raise OSError(f"URL fetch failure on {origin}: {e.code} -- {e.msg}") from e
    except urllib.error.URLError as e:
        raise OSError(f"URL fetch failure on {origin}: {e.errno} -- {e.reason}") from e
    with response, atomic_path(target) as tmp:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        bar = _progress(total)
        got = 0
        try:
            with open(tmp, "wb") as out:
                while True:
                    chunk = response.read(_CHUNK)
                    if not chunk:
                        break
                    out.write(chunk)
                    got += len(chunk)
                    if hasher is not None:
                        hasher.update(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
                out.flush()
                os.fsync(out.fileno())
        finally:
            if bar is not None:
                bar.close()
        if total is not None and got != total:
            raise OSError(f"URL fetch failure on {origin}: got {got} of the {total} bytes announced")
        if hasher is not None and hasher.hexdigest() != str(file_hash):
            raise ValueError(f"Incomplete or corrupted file detected. The {hash_algorithm} file hash does not "
                             f"match the provided value of {file_hash} (got {hasher.hexdigest()}); "
                             f"{origin} was not saved.")


# ---------------------------------------------------------------------------
# Safe extraction
# ---------------------------------------------------------------------------

def _inside(base, name):
    """The real path of base/name when it stays inside base, else None."""
    if os.path.isabs(name) or (len(name) > 1 and name[1] == ":"):
        return None
    path = os.path.realpath(os.path.join(base, name))
    return path if os.path.commonpath([path, base]) == base else None


def _check_members(kind, members, base):
    """Refuse the archive unless every member is a plain file, folder or a link that stays inside."""
    total = 0
    for count, (name, size, link, special) in enumerate(members, 1):
        if count > MAX_EXTRACT_MEMBERS:
            raise ValueError(f"Refusing to extract the {kind} archive: more than {MAX_EXTRACT_MEMBERS} members.")
        if special:
            raise ValueError(f"Refusing to extract the {kind} archive: member {name!r} is a {special}.")
        dest = _inside(base, name)
        if dest is None or ".." in name.replace("\\", "/").split("/"):
            raise ValueError(f"Refusing to extract the {kind} archive: member {name!r} would be written outside "
                             "the extraction folder.")
        if link is not None:
            kind_of_link, target = link
            resolved = (_inside(base, target) if kind_of_link == "hard"
                        else _inside(base, os.path.join(os.path.dirname(os.path.relpath(dest, base)), target)))
            if resolved is None:
                raise ValueError(f"Refusing to extract the {kind} archive: {kind_of_link} link {name!r} points "
                                 f"outside the extraction folder ({target!r}).")
        total += size
        if total > MAX_EXTRACT_BYTES:
            raise ValueError(f"Refusing to extract the {kind} archive: it unpacks to more than "
                             f"{MAX_EXTRACT_BYTES} bytes.")


def _tar_members(archive):
    for m in archive:
        special = None
        if m.ischr() or m.isblk():
            special = "device file"
        elif m.isfifo():
            special = "FIFO"
        elif not (m.isfile() or m.isdir() or m.issym() or m.islnk()):
            special = "special file"
        link = ("symbolic", m.linkname) if m.issym() else ("hard", m.linkname) if m.islnk() else None
        yield m.name, m.size, link, special


def _zip_members(archive):
    # zipfile writes a symbolic link's target as a small regular file: no link to check.
    for info in archive.infolist():
        yield info.filename, info.file_size, None, None


# What tarfile/zipfile raise for a damaged archive or a member the file system refuses
# (a name too long, a file named "." or over a folder, a link to a member not there).
_DAMAGED = (tarfile.TarError, zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, RuntimeError, KeyError,
            NotImplementedError, OSError)


def _extract_into(file_path, dest, archive_type):
    """Check, then extract into dest (a fresh, empty folder)."""
    base = os.path.realpath(dest)
    if archive_type == "tar":
        with tarfile.open(file_path) as archive:
            _check_members("tar", _tar_members(archive), base)
            kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            archive.extractall(dest, **kwargs)
    else:
        with zipfile.ZipFile(file_path) as archive:
            _check_members("zip", _zip_members(archive), base)
            # Then distinct names, no encryption, no member inflating past 100x its stored size
            # once above 64 MiB (a zip bomb would fill the disk).
            untrusted.zip_members(archive, repr(file_path), MAX_EXTRACT_BYTES)
            archive.extractall(dest)


def _is_archive(file_path, archive_type):
    """Whether the file is a tar/zip archive; a damaged one is refused rather than misread.

    tarfile.is_tarfile reads the first member through the compressor, so a truncated or
    corrupt gzip/bz2/xz stream raises (EOFError, zlib.error, ...) instead of answering.
    """
    is_match = tarfile.is_tarfile if archive_type == "tar" else zipfile.is_zipfile
    try:
        return is_match(file_path)
    except _DAMAGED as exc:
        if isinstance(exc, OSError) and not isinstance(exc, tarfile.TarError) and exc.errno is not None:
            raise  # the file cannot be read at all (missing, a folder, no permission): not the archive's fault
        raise ValueError(f"Cannot extract {file_path!r}: it starts like a compressed {archive_type} archive but the "
                         f"stream is damaged ({type(exc).__name__}: {str(exc)[:200]}). Nothing was extracted.") from None


def extract_archive(file_path, path=".", archive_format="auto"):
    """Extract a tar (.tar, .tar.gz, .tar.bz2, .tar.xz) or zip archive into `path`.

    The archive is checked and extracted into a temporary folder beside `path`,
    which then replaces `path`. Returns True when a format matched and the archive
    was extracted, False when none matched (keras extract_archive).
    """
    if archive_format is None:
        return False
    if archive_format == "auto":
        archive_format = ["tar", "zip"]
    if isinstance(archive_format, str):
        archive_format = [archive_format]
    for archive_type in archive_format:
        if archive_type not in ("tar", "zip"):
            raise ValueError("Received an invalid value for argument `archive_format`, expected 'auto', 'tar', "
                             f"'zip', a list of them or None, got {archive_type!r}.")
    file_path, path = os.fspath(file_path), os.fspath(path)
    for archive_type in archive_format:
        if not _is_archive(file_path, archive_type):
            continue
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.", suffix=".extracting", dir=parent)
        try:
            try:
                _extract_into(file_path, tmp, archive_type)
            except _DAMAGED as exc:
                if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EROFS):
                    raise  # the disk's fault, not the archive's
                raise ValueError(f"Cannot extract {file_path!r}: the {archive_type} archive is damaged or holds a "
                                 f"member that cannot be written ({type(exc).__name__}: {str(exc)[:200]}). Nothing "
                                 "was extracted.") from None
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            elif os.path.lexists(path):
                os.remove(path)
            os.replace(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return True
    return False


# ---------------------------------------------------------------------------
# get_file
# ---------------------------------------------------------------------------

def get_file(fname=None, origin=None, untar=False, md5_hash=None, file_hash=None, cache_subdir="datasets",
             hash_algorithm="auto", extract=False, archive_format="auto", cache_dir=None, force_download=False):
    """Download a file from a URL unless it is already in the cache (keras.utils.get_file).

    Args:
        fname: the file's name in the cache (no folders); the last part of the
            origin's path when None. With `extract`, a name without an extension
            names the extraction folder.
        origin: the URL (http, https, ftp or file).
        untar: deprecated for `extract`; extracts a tar archive.
        md5_hash: deprecated for `file_hash`; an md5 digest.
        file_hash: the expected sha256 or md5 hex digest of the file.
        cache_subdir: folder under the cache root (an absolute path is used as is).
        hash_algorithm: "auto" (sha256 for a 64-digit hash, else md5), "sha256" or "md5".
        extract: extract the archive (tar or zip) and return the folder.
        archive_format: "auto" (tar, then zip), "tar", "zip", a list of them, or None.
        cache_dir: the cache root; $KERAS_HOME or ~/.keras when None.
        force_download: download even when a cached file is there.

    Returns:
        The path of the file, or of the extraction folder with `extract`/`untar`.

    >>> get_file("data.txt", origin=None)
    Traceback (most recent call last):
    ...
    ValueError: Please specify the "origin" argument (URL of the file to download).
    """
    if origin is None:
        raise ValueError('Please specify the "origin" argument (URL of the file to download).')
    if not isinstance(origin, str):
        raise TypeError(f"Received an invalid value for argument `origin`, expected a URL string, got {origin!r}.")
    if md5_hash is not None and file_hash is None:
        file_hash, hash_algorithm = md5_hash, "md5"
    _check_algorithm(hash_algorithm)
    if cache_dir is None:
        cache_dir = keras_home()
    base = os.path.expanduser(os.fspath(cache_dir))
    try:
        os.makedirs(base, exist_ok=True)
    except OSError:
        pass
    if not os.access(base, os.W_OK):
        base = os.path.join("/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir(), ".keras")
    datadir = os.path.join(base, os.fspath(cache_subdir))
    os.makedirs(datadir, exist_ok=True)

    provided = fname is not None and os.fspath(fname) != ""
    fname = os.fspath(fname) if fname is not None else ""
    if not fname:
        fname = os.path.basename(urllib.parse.urlsplit(origin).path)
        if not fname:
            raise ValueError(f"Can't parse the file name from the origin provided: '{origin}'. Please specify the "
                             "`fname` argument.")
    elif os.sep in fname or (os.altsep and os.altsep in fname):
        raise ValueError("Paths are no longer accepted as the `fname` argument. To specify the file's parent "
                         f"directory, use the `cache_dir` argument. Received: fname={fname}")
    if fname in (".", ".."):
        raise ValueError(f"Received an invalid value for argument `fname`, expected a file name, got {fname!r}.")

    if extract or untar:
        if provided and "." in fname:
            target = os.path.join(datadir, fname)
            stem = fname[: fname.find(".")]
            extraction_dir = os.path.join(datadir, f"{stem}_extracted")
        else:
            extraction_dir = os.path.join(datadir, fname)
            target = os.path.join(datadir, f"{fname}_archive")
    else:
        target = os.path.join(datadir, fname)

    if force_download or not os.path.exists(target):
        download = True
    elif file_hash is not None and not validate_file(target, file_hash, algorithm=hash_algorithm):
        print(f"A local file was found, but it seems to be incomplete or outdated because the {hash_algorithm} "
              f"file hash does not match the original value of {file_hash} so we will re-download the data.")
        download = True
    else:
        download = False

    if download:
        print(f"Downloading data from {origin}")
        _download(origin, target, file_hash, hash_algorithm)

    if extract or untar:
        if untar:
            archive_format = "tar"
        if download or not os.path.isdir(extraction_dir):
            if not extract_archive(target, extraction_dir, archive_format):
                warnings.warn("Could not extract archive.", stacklevel=2)
        return extraction_dir
    return target
