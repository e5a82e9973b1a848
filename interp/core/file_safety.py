"""Files that are safe to read and to write, for any folder that holds results: the file-safety
layer under the run format (`interp.training.rundir`), releases, reports and sweeps.

- Regular files only: a symlink, device or FIFO is refused before anything is read (opening
  never blocks), and no symlinked folder below a root is followed.
- Atomic writes: a temporary file beside the target, fsynced, renamed over it (`os.replace`); a
  failure part-way leaves the old file.
- Manifests: the SHA-256 of every file a folder holds, written last; a reader takes only the
  files a manifest names, after checking their digests.
- Locks: one writer per folder (an `flock` beside it, released by the kernel when the holder
  dies, even by kill -9), naming the holder's pid.
- Folders assembled beside their target and swapped in atomically (Linux
  `renameat2(RENAME_EXCHANGE)`, elsewhere two renames).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import stat
from pathlib import Path
from typing import Any, Iterator

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes
from torch import Tensor

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "interp.manifest"


class CheckpointError(RuntimeError):
    """A run directory or checkpoint (or another folder these files hold) is missing, truncated,
    corrupted, not a regular file, or does not match its config."""


class RunDirectoryLocked(RuntimeError):
    """Another process is writing this folder (training, resuming or exporting into it)."""



# --- regular files only -------------------------------------------------------------------


def no_links_below(root: Path, path: Path) -> None:
    """Refuse a symlink (or non-folder) among the folders between `root` and `path`, so that no
    read or write below a run directory is redirected out of it."""
    root, path = Path(root), Path(path)
    try:
        parts = path.relative_to(root).parts[:-1]
    except ValueError:
        parts = ()
    here = root
    for part in parts:
        here = here / part
        try:
            mode = os.lstat(here).st_mode
        except FileNotFoundError:
            return
        if stat.S_ISLNK(mode):
            raise CheckpointError(f"{here} is a symbolic link; a run directory holds real folders and files only")
        if not stat.S_ISDIR(mode):
            raise CheckpointError(f"{here} is not a folder")


def read_bytes(path: Path, root: Path | None = None) -> bytes:
    """The bytes of `path`, a regular file (checked before anything is read: a symlink, device
    or FIFO is refused, and opening never blocks), with no symlinked folder below `root`."""
    path = Path(path)
    if root is not None:
        no_links_below(root, path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing") from None
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise CheckpointError(f"{path} is a symbolic link; a run directory holds regular files only") from None
        raise CheckpointError(f"{path} cannot be read: {err.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise CheckpointError(f"{path} is not a regular file (a folder, device or FIFO)")
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256(path: Path) -> str:
    return digest(read_bytes(path))


def parse_json(path: Path, data: bytes) -> Any:
    try:
        return json.loads(data.decode())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path} is not valid JSON (truncated or corrupted?): {err}") from None


def parse_tensors(path: Path, data: bytes) -> dict[str, Tensor]:
    try:
        return load_bytes(data)
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path} is not a readable safetensors file (truncated or corrupted?): {err}") from None


def read_json(path: Path) -> Any:
    """A JSON file, regular files only. Run-directory readers use `read_verified_json`."""
    return parse_json(Path(path), read_bytes(path))


# --- atomic files -------------------------------------------------------------------------


def fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> str:
    """Write `data` to a temporary file beside `path`, fsync it, then rename it over `path` (a
    rename replaces a symlink there, never what it points to). Returns the SHA-256 of `data`.
    The file gets the process's normal permissions (0666 less the umask). A failure part-way
    (a full disk) removes the temporary file and leaves `path` as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if os.path.islink(path.parent):
        raise CheckpointError(f"{path.parent} is a symbolic link; refusing to write through it")
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)
    return digest(data)


def atomic_write(path: Path, write) -> None:
    """Atomically write what `write(tmp_path)` writes (for writers that need a path: figures)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{secrets.token_hex(6)}.{path.name}"  # keeps the suffix writers look at
    try:
        write(str(tmp))
        atomic_write_bytes(path, read_bytes(tmp))
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, allow_nan=False) + "\n").encode()


def write_json(path: Path, obj: Any) -> str:
    try:
        data = json_bytes(obj)
    except ValueError as err:  # NaN or infinity: nothing is written
        raise ValueError(f"{path}: {err}") from None
    return atomic_write_bytes(Path(path), data)


def write_text(path: Path, text: str) -> str:
    return atomic_write_bytes(Path(path), text.encode())


def tensor_bytes(tensors: dict[str, torch.Tensor]) -> bytes:
    return save_bytes({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, metadata={"format": "pt"})


def write_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> str:
    """Write `tensors` as safetensors; returns the file's SHA-256 (safetensors has no checksum
    of its own, so the manifest records it)."""
    return atomic_write_bytes(Path(path), tensor_bytes(tensors))


def read_tensors(path: Path, expected_sha256: str | None = None) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, after checking its SHA-256 when one is expected
    (for files outside run directories; run-directory readers use `read_verified_tensors`)."""
    path = Path(path)
    data = read_bytes(path)
    if expected_sha256 is not None and digest(data) != expected_sha256:
        raise CheckpointError(f"{path} is truncated or corrupted: its SHA-256 differs from the one recorded when it was written")
    return parse_tensors(path, data)


# --- manifests ----------------------------------------------------------------------------


def read_manifest(folder: Path, root: Path | None = None, expected_sha256: str | None = None) -> dict[str, str]:
    """File name (relative to `folder`) → SHA-256, from `folder/manifest.json`; checked against
    `expected_sha256` when the manifest is itself named by another."""
    path = Path(folder) / MANIFEST
    data = read_bytes(path, root if root is not None else folder)
    if expected_sha256 is not None and digest(data) != expected_sha256:
        raise CheckpointError(f"{path} was edited or replaced: its SHA-256 differs from the one {Path(root or folder) / MANIFEST} records")
    manifest = parse_json(path, data)
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT or not isinstance(files, dict) \
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        raise CheckpointError(f"{path} is not an {MANIFEST_FORMAT} file")
    return files


def write_manifest(folder: Path, files: dict[str, str]) -> str:
    """Write `folder/manifest.json`, last, atomically. Returns its SHA-256."""
    return write_json(Path(folder) / MANIFEST, {"format": MANIFEST_FORMAT, "files": dict(sorted(files.items()))})


def update_manifest(run_dir: Path, entries: dict[str, str | None]) -> None:
    """Add, replace (a digest) or drop (None) entries of the run directory's manifest."""
    files = read_manifest(run_dir) if os.path.lexists(Path(run_dir) / MANIFEST) else {}
    for name, digest in entries.items():
        if digest is None:
            files.pop(name, None)
        else:
            files[name] = digest
    write_manifest(run_dir, files)


def seal(folder: Path, names: list[str] | None = None) -> str:
    """Write the manifest of the files `names` (default: every regular file but the manifest)
    as they are now: for tools that assemble a folder (and the one-off script that gave the
    released models their manifests), never for a reader."""
    folder = Path(folder)
    names = names if names is not None else sorted(
        p.name for p in folder.iterdir() if p.name != MANIFEST and not p.name.startswith("."))
    return write_manifest(folder, {name: digest(read_bytes(folder / name, folder)) for name in names})


def read_verified(folder: Path, name: str, files: dict[str, str], root: Path | None = None) -> bytes:
    """The bytes of `folder/name` after checking them against the digest `files` records for
    it; a file the manifest does not name is an error, never a skip."""
    path = Path(folder) / name
    expected = files.get(name)
    if expected is None:
        raise CheckpointError(f"{path} is not recorded in {Path(folder) / MANIFEST} (not finished writing, or added by hand)")
    data = read_bytes(path, root if root is not None else folder)
    if digest(data) != expected:
        raise CheckpointError(f"{path} is truncated or corrupted (or was edited): its SHA-256 differs from the one {MANIFEST} records")
    return data


def read_verified_json(folder: Path, name: str, files: dict[str, str], root: Path | None = None) -> Any:
    return parse_json(Path(folder) / name, read_verified(folder, name, files, root))


def read_verified_tensors(folder: Path, name: str, files: dict[str, str], root: Path | None = None) -> dict[str, Tensor]:
    return parse_tensors(Path(folder) / name, read_verified(folder, name, files, root))


# --- locks --------------------------------------------------------------------------------


def lock_path(run_dir: Path) -> Path:
    """The lock of a run directory lies beside it, so that it survives the folder being replaced
    (an export) and never enters a release."""
    run_dir = Path(run_dir)
    return run_dir.parent / f".{run_dir.name}.lock"


@contextlib.contextmanager
def locked(run_dir: Path) -> Iterator[None]:
    """Hold the run directory's lock (an flock, released by the kernel when the process dies,
    even by kill -9); a second writer gets RunDirectoryLocked naming the holder's pid."""
    path = lock_path(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise RunDirectoryLocked(f"{run_dir} is in use by another interp process (pid {holder}, lock {path}); "
                                     "wait for it to finish") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


# --- folders assembled beside their target ------------------------------------------------


def scratch_beside(target: Path) -> Path:
    """A fresh empty folder beside `target`, on the same file system, to assemble it in."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = target.parent / f".{target.name}.{secrets.token_hex(6)}.partial"
    scratch.mkdir()
    return scratch


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(str(a)), at_fdcwd, os.fsencode(str(b)), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def replace_folder(scratch: Path, target: Path) -> None:
    """Put the assembled `scratch` in place of `target`: a rename when there is none, else an
    atomic exchange (readers see the old folder or the new one), then the old one is removed."""
    scratch, target = Path(scratch), Path(target)
    if not os.path.lexists(target):
        os.replace(scratch, target)
    elif os.path.islink(target) or not target.is_dir():
        raise CheckpointError(f"{target} is not a folder (a symbolic link or a file); refusing to replace it")
    elif _exchange(scratch, target):
        shutil.rmtree(scratch)
    else:  # no atomic exchange here: two renames, the old folder kept until the new one is in place
        old = target.parent / f".{target.name}.{secrets.token_hex(6)}.old"
        os.replace(target, old)
        os.replace(scratch, target)
        shutil.rmtree(old)
    fsync_dir(target.parent)


def refuse_nonempty(target: Path, replace: bool, what: str = "folder") -> None:
    """A target folder must be absent or empty unless `replace` says it may be replaced."""
    target = Path(target)
    if os.path.islink(target):
        raise CheckpointError(f"{target} is a symbolic link; choose a real {what}")
    if target.exists() and not target.is_dir():
        raise CheckpointError(f"{target} exists and is not a folder")
    if target.is_dir() and any(target.iterdir()) and not replace:
        raise CheckpointError(f"{target} is not empty; pass --replace (replace=True) to replace it")
