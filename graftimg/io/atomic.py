"""Crash-safe file writes: a temporary file in the same folder, fsync, then rename.

Temporaries are hidden and carry the writing process's id (``.graftimg-tmp-<pid>-…``), so a
later run can tell the leftovers of a killed process from the files of a live one and remove
them (:func:`clean_temporaries`). :func:`exclusive_lock` lets two processes share one output
folder without doing the same work twice.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from graftimg.errors import OutputError

__all__ = [
    "LOCK_PREFIX",
    "TEMP_PREFIX",
    "atomic_path",
    "clean_temporaries",
    "exclusive_lock",
    "fsync_folder",
    "hidden_folder",
    "temporary_folder",
    "write_bytes_atomic",
    "write_json_atomic",
    "write_text_atomic",
]

#: Name start of every temporary file or folder graftimg writes (then the writer's pid).
TEMP_PREFIX = ".graftimg-tmp-"
#: Name start of lock files (:func:`exclusive_lock`).
LOCK_PREFIX = ".graftimg-lock-"


def _temp_prefix() -> str:
    return f"{TEMP_PREFIX}{os.getpid()}-"


def _cannot_write(err: OSError, path: Path) -> OutputError:
    """An OSError while writing ``path`` as one line naming the final file, not a temporary."""
    reason = err.strerror or type(err).__name__
    return OutputError(
        f"cannot write ({reason})",
        path=path,
        hint="check that the folder is writable and the disk has space, or choose another",
    )


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    The caller writes the whole file to the yielded path. If the block raises, the temporary
    file is removed and ``path`` is left untouched, so a reader never sees half a file.

    Parameters
    ----------
    path : path-like
        Final destination. Its folder must exist.
    suffix : str, optional
        Suffix of the temporary file (libraries such as nibabel choose the format from it);
        defaults to the full suffix of ``path`` (e.g. ``.nii.gz``).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_path(d / "a.txt") as tmp:
    ...     _ = tmp.write_text("hello")
    >>> (d / "a.txt").read_text()
    'hello'
    """
    final = Path(path)
    folder = final.parent
    if not folder.is_dir():
        raise OutputError(
            "output folder does not exist", path=folder, hint="create it first or choose another"
        )
    if suffix is None:
        suffix = "".join(final.suffixes) or ".tmp"
    try:
        tmp = _new_name(folder, _temp_prefix(), suffix, _create_file)
    except OSError as err:
        raise _cannot_write(err, final) from None
    try:
        try:
            yield tmp
        except OSError as err:
            if err.filename is not None and Path(err.filename) == tmp:
                raise _cannot_write(err, final) from None
            raise
        try:
            with open(tmp, "rb+") as handle:
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, final)
        except OSError as err:
            raise _cannot_write(err, final) from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    fsync_folder(folder)


def _create_file(path: Path) -> None:
    # Mode 0o666 and the kernel applies the process umask: the permissions a plain open()
    # gives, without reading the umask (os.umask would change it for every thread meanwhile).
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))


def _create_folder(path: Path) -> None:
    os.mkdir(path, 0o777)  # the umask applies, as for a plain mkdir


def _new_name(folder: Path, prefix: str, suffix: str, create: Callable[[Path], None]) -> Path:
    """Create a new file or folder with a random name in ``folder``; return its path."""
    for _ in range(100):
        path = folder / f"{prefix}{secrets.token_hex(6)}{suffix}"
        try:
            create(path)
        except FileExistsError:
            continue
        return path
    raise OutputError("no free temporary name", path=folder, hint="clean up hidden files")


def hidden_folder(parent: str | os.PathLike, prefix: str) -> Path:
    """Create a new, empty folder with a hidden random name in ``parent`` and return it.

    Unlike :func:`tempfile.mkdtemp` (mode 0700), the folder gets the permissions a plain
    ``mkdir`` gives, so a tree built in it and renamed into place is readable as usual. It
    stays: rename it into place or remove it.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = hidden_folder(tempfile.mkdtemp(), ".study.tmp-")
    >>> d.is_dir(), d.name.startswith(".study.tmp-")
    (True, True)
    """
    return _new_name(Path(parent), prefix, "", _create_folder)


@contextlib.contextmanager
def temporary_folder(folder: str | os.PathLike) -> Iterator[Path]:
    """A hidden temporary folder inside ``folder``, removed with its content afterwards.

    Files are written there and moved into place with :func:`os.replace` (same file system).
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(), dir=folder))
    except OSError as err:
        raise OutputError(
            f"cannot create a folder here ({err.strerror})",
            path=folder,
            hint="check that the folder is writable, or choose another",
        ) from None
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    except OSError:
        return False
    return True


def clean_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove what killed graftimg processes left in ``folder`` (recursively); return it.

    Temporaries of a process still running (another run sharing the folder) are kept, and so
    are locks still held.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / ".graftimg-tmp-999999999-x.nii.gz").write_bytes(b"half")
    >>> [p.name for p in clean_temporaries(d)]
    ['.graftimg-tmp-999999999-x.nii.gz']
    """
    removed = []
    for path in sorted(Path(folder).rglob(".graftimg-*")):
        if path.name.startswith(TEMP_PREFIX):
            pid_text = path.name[len(TEMP_PREFIX) :].split("-", 1)[0]
            if not pid_text.isdigit() or _pid_alive(int(pid_text)):
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            removed.append(path)
        elif path.name.startswith(LOCK_PREFIX) and path.is_file():
            with exclusive_lock(path) as held:
                if held:  # nobody holds it: a killed run's lock file (removed on release)
                    removed.append(path)
    return removed


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike) -> Iterator[bool]:
    """Try to take an exclusive lock on ``path`` without waiting; yield whether it was taken.

    The lock is an ``fcntl.flock`` on the file, so the kernel releases it when the process
    dies (even by SIGKILL); the file is removed on release. Where ``fcntl`` does not exist
    (Windows) the lock is always granted.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield True
        return
    path = Path(path)
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise _cannot_write(err, path) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            fd = -1
        if fd < 0:
            yield False
            return
        # The holder before us may have removed the file after we opened it: then our lock
        # is on a deleted file and means nothing; take it again on the current one.
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield True
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        os.close(fd)


def fsync_folder(folder: str | os.PathLike) -> None:
    """Flush a folder's entries (renames into it) to disk, where the system allows it."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically and return the path."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(
    path: str | os.PathLike, obj: Any, *, default: Callable[[Any], Any] | None = None
) -> Path:
    """Write ``obj`` as indented, key-sorted JSON to ``path`` atomically."""
    text = json.dumps(obj, indent=2, sort_keys=True, default=default, allow_nan=False)
    return write_text_atomic(path, text + "\n")
