"""Run directories: safetensors weights + JSON, written atomically, loaded without unpickling.

    RUN_DIR/
      config.json          spec (task, noise + seeds, model, training), parameter shapes,
                           TransformerLens config (transformers), library versions
      model.safetensors    final weights
      history.json         metric rows, one per evaluation
      manifest.json        SHA-256 of every file above and of every checkpoint's manifest
      checkpoints/step_N/  model.safetensors, optimizer.safetensors, state.json, history.json,
                           manifest.json (SHA-256 of the other four)

One integrity rule (docs/checkpoints.md): every file a reader takes is a regular file inside the
run directory whose SHA-256 its manifest records; the manifest is written last, atomically; a
file the manifest does not name, or whose digest differs, is an error. A trajectory checkpoint
holds everything needed to resume.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import platform
import secrets
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes
from torch import Tensor, nn

from ..core.specs import RunSpec, SpecError
from ..core.tasks import Dataset, DatasetError, make_dataset
from ..families.base import build_model, family_of

FORMAT = "interp.run"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MANIFEST_FORMAT = "interp.manifest"
#: the files of a trajectory checkpoint its manifest covers (a release's have no optimizer state)
CHECKPOINT_FILES = ("model.safetensors", "optimizer.safetensors", "history.json", "state.json")


class CheckpointError(RuntimeError):
    """A run directory or checkpoint is missing, truncated, corrupted or does not match its config."""


class RunDirectoryLocked(RuntimeError):
    """Another process is writing this run directory (training, resuming or exporting into it)."""


# --- regular files only -------------------------------------------------------------------


def _no_links_below(root: Path, path: Path) -> None:
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
        _no_links_below(root, path)
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


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256(path: Path) -> str:
    return _digest(read_bytes(path))


def _parse_json(path: Path, data: bytes) -> Any:
    try:
        return json.loads(data.decode())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path} is not valid JSON (truncated or corrupted?): {err}") from None


def _parse_tensors(path: Path, data: bytes) -> dict[str, Tensor]:
    try:
        return load_bytes(data)
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path} is not a readable safetensors file (truncated or corrupted?): {err}") from None


def read_json(path: Path) -> Any:
    """A JSON file, regular files only. Run-directory readers use `read_verified_json`."""
    return _parse_json(Path(path), read_bytes(path))


# --- atomic files -------------------------------------------------------------------------


def _fsync_dir(folder: Path) -> None:
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
    _fsync_dir(path.parent)
    return _digest(data)


def _atomic_write(path: Path, write) -> None:
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
    if expected_sha256 is not None and _digest(data) != expected_sha256:
        raise CheckpointError(f"{path} is truncated or corrupted: its SHA-256 differs from the one recorded when it was written")
    return _parse_tensors(path, data)


# --- manifests ----------------------------------------------------------------------------


def read_manifest(folder: Path, root: Path | None = None, expected_sha256: str | None = None) -> dict[str, str]:
    """File name (relative to `folder`) → SHA-256, from `folder/manifest.json`; checked against
    `expected_sha256` when the manifest is itself named by another."""
    path = Path(folder) / MANIFEST
    data = read_bytes(path, root if root is not None else folder)
    if expected_sha256 is not None and _digest(data) != expected_sha256:
        raise CheckpointError(f"{path} was edited or replaced: its SHA-256 differs from the one {Path(root or folder) / MANIFEST} records")
    manifest = _parse_json(path, data)
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
    return write_manifest(folder, {name: _digest(read_bytes(folder / name, folder)) for name in names})


def read_verified(folder: Path, name: str, files: dict[str, str], root: Path | None = None) -> bytes:
    """The bytes of `folder/name` after checking them against the digest `files` records for
    it; a file the manifest does not name is an error, never a skip."""
    path = Path(folder) / name
    expected = files.get(name)
    if expected is None:
        raise CheckpointError(f"{path} is not recorded in {Path(folder) / MANIFEST} (not finished writing, or added by hand)")
    data = read_bytes(path, root if root is not None else folder)
    if _digest(data) != expected:
        raise CheckpointError(f"{path} is truncated or corrupted (or was edited): its SHA-256 differs from the one {MANIFEST} records")
    return data


def read_verified_json(folder: Path, name: str, files: dict[str, str], root: Path | None = None) -> Any:
    return _parse_json(Path(folder) / name, read_verified(folder, name, files, root))


def read_verified_tensors(folder: Path, name: str, files: dict[str, str], root: Path | None = None) -> dict[str, Tensor]:
    return _parse_tensors(Path(folder) / name, read_verified(folder, name, files, root))


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
    _fsync_dir(target.parent)


def refuse_nonempty(target: Path, replace: bool, what: str = "folder") -> None:
    """A target folder must be absent or empty unless `replace` says it may be replaced."""
    target = Path(target)
    if os.path.islink(target):
        raise CheckpointError(f"{target} is a symbolic link; choose a real {what}")
    if target.exists() and not target.is_dir():
        raise CheckpointError(f"{target} exists and is not a folder")
    if target.is_dir() and any(target.iterdir()) and not replace:
        raise CheckpointError(f"{target} is not empty; pass --replace (replace=True) to replace it")


# --- datasets -----------------------------------------------------------------------------


def dataset_tensors(dataset: Dataset) -> dict[str, torch.Tensor]:
    """The dataset as plain tensors, readable with safetensors alone (docs/checkpoints.md)."""
    return {"inputs": dataset.inputs, "true_labels": dataset.true_labels, "observed_labels": dataset.labels,
            "train_mask": dataset.train_mask, "noisy_mask": dataset.noisy_mask, "clean_mask": dataset.clean_mask,
            "test_mask": dataset.test_mask}


def read_config(run_dir: Path, files: dict[str, str] | None = None) -> dict[str, Any]:
    """`config.json`, checked against the manifest; it must be an interp.run object."""
    run_dir = Path(run_dir)
    files = read_manifest(run_dir) if files is None else files
    config = read_verified_json(run_dir, "config.json", files)
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f"{run_dir}/config.json is not an {FORMAT} config")
    if not isinstance(config.get("format_version", 0), int) or config.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{run_dir} was written by a newer interp (format {config.get('format_version')!r})")
    if not isinstance(config.get("sha256", {}), dict):
        raise CheckpointError(f"{run_dir}/config.json: `sha256` is not a table of file digests")
    return config


def read_dataset(run_dir: Path, spec: RunSpec, files: dict[str, str] | None = None) -> Dataset:
    """The run's own dataset, from `dataset.safetensors` after checking its SHA-256. A run whose
    config says its dataset was drawn from its spec (`"dataset": "spec"`, the default) must hold
    exactly what the spec draws here: another torch's random generator, or an edited file, is an
    error, never a silent swap. A user's dataset (`"dataset": "user"`) is taken as stored."""
    run_dir = Path(run_dir)
    files = read_manifest(run_dir) if files is None else files
    config = read_config(run_dir, files)
    path = run_dir / "dataset.safetensors"
    expected = config.get("sha256", {}).get("dataset.safetensors")
    if expected is None:
        raise CheckpointError(f"{run_dir}/config.json records no SHA-256 for dataset.safetensors")
    data = read_verified(run_dir, "dataset.safetensors", files)
    if _digest(data) != expected:
        raise CheckpointError(f"{path} is truncated or corrupted (or was edited): its SHA-256 differs from the one config.json records")
    stored = _parse_tensors(path, data)
    missing = {"inputs", "observed_labels", "train_mask"} - stored.keys()
    if missing:
        raise CheckpointError(f"{path} lacks {', '.join(sorted(missing))}")
    try:
        dataset = Dataset.from_tensors(spec.task, stored["inputs"], stored["observed_labels"], stored["train_mask"],
                                       stored.get("true_labels"))
    except DatasetError as err:
        raise CheckpointError(f"{path} is not a dataset of {spec.task.describe()}: {err}") from None
    for name, value in dataset_tensors(dataset).items():
        if name in stored and not torch.equal(stored[name], value):
            raise CheckpointError(f"{path}: `{name}` disagrees with the labels and split stored beside it")
    origin = config.get("dataset", "spec")
    if origin == "user":
        return dataset
    drawn = make_dataset(spec.task, spec.noise)
    if not drawn.same_as(dataset):
        raise CheckpointError(f"{path} differs from the dataset that the run's spec generates here "
                              "(edited, or drawn by another torch's random generator)")
    return drawn


def dataset_origin(spec: RunSpec, dataset: Dataset) -> str:
    """`spec` when the spec draws exactly `dataset`, else `user`."""
    try:
        return "spec" if make_dataset(spec.task, spec.noise).same_as(dataset) else "user"
    except ValueError:  # the spec draws no dataset at all (e.g. a train fraction that empties a set)
        return "user"


# --- models -------------------------------------------------------------------------------


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    def installed(package: str) -> str:
        try:
            return version(package)
        except PackageNotFoundError:
            return "not installed"

    return {
        "python": platform.python_version(),
        **{name: installed(name) for name in ("interp", "torch", "transformer-lens", "safetensors")},
    }


def model_config(spec: RunSpec, model: nn.Module) -> dict[str, Any]:
    config: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "spec": spec.to_dict(),
        "parameters": {k: list(v.shape) for k, v in model.state_dict().items()},
        "versions": library_versions(),
    }
    return {**config, **family_of(model).config(model)}


def load_state(model: nn.Module, tensors: dict[str, torch.Tensor], source: Path) -> None:
    """Load `tensors` into `model` after naming every missing, unexpected or misshapen tensor."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in tensors.items()}
    problems = [f"missing {k} {expected[k]}" for k in expected.keys() - found.keys()]
    problems += [f"unexpected {k} {found[k]}" for k in found.keys() - expected.keys()]
    problems += [
        f"{k} has shape {found[k]}, config says {expected[k]}"
        for k in expected.keys() & found.keys()
        if expected[k] != found[k]
    ]
    if problems:
        raise CheckpointError(f"{source} does not match its config: " + "; ".join(sorted(problems)))
    model.load_state_dict(tensors, strict=True)


def read_spec(run_dir: Path, files: dict[str, str] | None = None) -> RunSpec:
    config = read_config(run_dir, files)
    try:
        return RunSpec.from_dict(config["spec"])
    except (SpecError, KeyError, TypeError, AttributeError) as err:
        raise CheckpointError(f"{run_dir}/config.json has an invalid spec: {err}") from None


@dataclass
class Run:
    """A trained (or partly trained) model, the spec that made it, its metric history and the
    dataset it was trained on — the one every analysis scores. Without `dataset`, the spec's own
    is drawn (`make_dataset(spec.task, spec.noise)`); pass yours (`Dataset.from_tensors`) for a
    model trained on your own split and labels."""

    spec: RunSpec
    model: nn.Module
    history: list[dict[str, Any]]
    step: int
    path: Path | None = None
    dataset: Dataset | None = None

    def __post_init__(self) -> None:
        if self.dataset is None:
            self.dataset = make_dataset(self.spec.task, self.spec.noise)
        elif (self.dataset.task.describe(), self.dataset.p) != (self.spec.task.describe(), self.spec.task.p):
            raise ValueError(f"the dataset is {self.dataset.task.describe()}, the spec {self.spec.task.describe()}")

    @property
    def final_metrics(self) -> dict[str, Any]:
        return self.history[-1] if self.history else {}

    def tokens(self, pairs: Tensor) -> Tensor:
        """What the model's own forward takes for (a, b) `pairs` (`a b =` rows for a transformer)."""
        return family_of(self.model).tokens(self.model, pairs)

    def logits(self, pairs: Tensor) -> Tensor:
        """Mod-p logits [batch, p] for (a, b) `pairs`, at the predicting position."""
        return family_of(self.model).forward(self.model, pairs)

    def run_with_cache(self, pairs: Tensor, names_filter=None) -> tuple[Tensor, Any]:
        """The model's `run_with_cache` on (a, b) `pairs`, tokens made for it: its logits and
        activation cache exactly as TransformerLens returns them (every position)."""
        return self.model.run_with_cache(self.tokens(pairs), names_filter=names_filter)

    def __repr__(self) -> str:
        where = f" at {self.path}" if self.path is not None else ""
        return f"Run({self.spec.model.arch}, {self.spec.task.describe()}, step {self.step}{where})"


def save_run(run_dir: Path, run: Run, extra: dict[str, Any] | None = None) -> None:
    """Write the final model, its dataset, history and config (with the SHA-256 of each
    tensor file, and the `extra` entries) into `run_dir`, then its manifest, last: until the
    manifest names them, the new files are not part of the run."""
    run_dir = Path(run_dir)
    refuse_links_in(run_dir)
    hashes = {"model.safetensors": write_tensors(run_dir / "model.safetensors", run.model.state_dict()),
              "dataset.safetensors": write_tensors(run_dir / "dataset.safetensors", dataset_tensors(run.dataset))}
    files = {**hashes, "history.json": write_json(run_dir / "history.json", _history_list(run.history))}
    files["config.json"] = write_json(run_dir / "config.json", {
        **model_config(run.spec, run.model), "step": run.step, "dataset": dataset_origin(run.spec, run.dataset),
        **(extra or {}), "sha256": hashes})
    update_manifest(run_dir, files)


def save_new_run(run_dir: Path, run: Run, extra: dict[str, Any] | None = None) -> None:
    """`save_run` into the new run directory `run_dir` (absent or an empty folder), holding its
    lock: assembled in a scratch folder beside it and renamed into place, so a second writer
    is refused (`RunDirectoryLocked`) and a failure part-way (a NaN, a full disk) leaves
    nothing behind that a rerun would trip on."""
    run_dir = Path(run_dir)
    with locked(run_dir):
        if os.path.islink(run_dir) or run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
            raise CheckpointError(f"{run_dir} is not empty; choose another --out")
        scratch = scratch_beside(run_dir)
        try:
            save_run(scratch, run, extra)
            replace_folder(scratch, run_dir)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def _history_list(history: Any) -> list:
    if not isinstance(history, list):
        raise CheckpointError(f"a history is a list of metric rows, not {type(history).__name__}")
    return history


#: the names a run directory's writers create: none may be a symbolic link
RUN_FILES = ("config.json", "model.safetensors", "dataset.safetensors", "history.json", MANIFEST, "checkpoints")


def refuse_links_in(run_dir: Path) -> None:
    """Refuse a run directory whose own files or `checkpoints` folder are symbolic links (or a
    `checkpoints` that is not a folder): writes must never land outside it."""
    for name in RUN_FILES:
        path = Path(run_dir) / name
        if os.path.islink(path):
            raise CheckpointError(f"{path} is a symbolic link; a run directory holds real files and folders only")
    checkpoints = Path(run_dir) / "checkpoints"
    if checkpoints.exists() and not checkpoints.is_dir():
        raise CheckpointError(f"{checkpoints} is not a folder")
    if checkpoints.is_dir():
        for entry in checkpoints.iterdir():
            if entry.is_symlink():
                raise CheckpointError(f"{entry} is a symbolic link; a run directory holds real files and folders only")


def _check_run_dir(run_dir: Path | str) -> Path:
    if str(run_dir) == "":
        raise CheckpointError("the run directory is an empty path")
    run_dir = Path(run_dir)
    if run_dir.is_symlink() and not run_dir.is_dir():
        raise CheckpointError(f"{run_dir} is a symbolic link to no folder")
    if not run_dir.is_dir():
        raise CheckpointError(f"{run_dir} is not a run directory")
    return run_dir


def load_run(run_dir: Path | str, step: int | None = None) -> Run:
    """Load a run directory's final model, or its trajectory checkpoint at `step`; every file
    read is checked against the manifest first."""
    run_dir = _check_run_dir(run_dir)
    files = read_manifest(run_dir)
    config = read_config(run_dir, files)
    spec = read_spec(run_dir, files)
    model = build_model(spec.model, spec.task.p)
    if step is None:
        if "model.safetensors" not in files:
            raise CheckpointError(f"{run_dir} holds no final model yet (training did not finish); "
                                  f"resume it, or load a checkpoint with step=")
        source, source_files = run_dir, files
        step = config.get("step")
        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            raise CheckpointError(f"{run_dir}/config.json: `step` must be a non-negative integer, got {step!r}")
    else:
        source, source_files, _ = read_checkpoint(run_dir, step, files)
    load_state(model, read_verified_tensors(source, "model.safetensors", source_files, run_dir),
               source / "model.safetensors")
    history = _checked_history(source / "history.json", read_verified_json(source, "history.json", source_files, run_dir))
    return Run(spec, model.eval(), history, step, run_dir, read_dataset(run_dir, spec, files))


def _checked_history(path: Path, history: Any) -> list[dict[str, Any]]:
    if not isinstance(history, list) or not all(isinstance(row, dict) and "step" in row for row in history):
        raise CheckpointError(f"{path} is not a list of metric rows")
    return history


# --- trajectory ---------------------------------------------------------------------------


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step_{step}"


def _checkpoint_key(step: int) -> str:
    return f"checkpoints/step_{step}/{MANIFEST}"


def trajectory_steps(run_dir: Path) -> list[int]:
    """Steps of the trajectory checkpoints the run's manifest records, ascending (a folder on
    disk that the manifest does not name — a crash's leftover, or one renamed — is not one)."""
    if not os.path.lexists(Path(run_dir) / MANIFEST):
        return []
    steps = []
    for name in read_manifest(run_dir):
        parts = name.split("/")
        if len(parts) == 3 and parts[0] == "checkpoints" and parts[2] == MANIFEST and parts[1].startswith("step_") \
                and parts[1][5:].isdigit():
            steps.append(int(parts[1][5:]))
    return sorted(steps)


def read_checkpoint(run_dir: Path, step: int, files: dict[str, str] | None = None
                    ) -> tuple[Path, dict[str, str], dict[str, Any]]:
    """The folder, manifest and state of the checkpoint at `step`, all verified: its manifest
    against the run's, and its recorded step against its folder's name."""
    run_dir = Path(run_dir)
    files = read_manifest(run_dir) if files is None else files
    key = _checkpoint_key(step)
    if key not in files:
        steps = trajectory_steps(run_dir)
        raise CheckpointError(f"{run_dir} has no checkpoint at step {step}; its steps: "
                              + (", ".join(map(str, steps)) if steps else "none (no trajectory)"))
    folder = checkpoint_dir(run_dir, step)
    own = read_manifest(folder, run_dir, files[key])
    state = read_verified_json(folder, "state.json", own, run_dir)
    if not isinstance(state, dict) or state.get("step") != step:
        found = state.get("step") if isinstance(state, dict) else state
        raise CheckpointError(f"{folder}/state.json records step {found!r}, not the {step} its folder is named for")
    return folder, own, state


def save_checkpoint(
    run_dir: Path,
    step: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    history: list[dict[str, Any]],
) -> Path:
    """Everything needed to resume at `step`. Built in a scratch folder with its manifest
    written last, then renamed into place and named in the run's manifest, so a checkpoint is
    either complete and recorded or not part of the run."""
    run_dir = Path(run_dir)
    refuse_links_in(run_dir)
    final = checkpoint_dir(run_dir, step)
    scratch = final.with_name(final.name + ".partial")
    _remove(scratch)
    scratch.mkdir(parents=True)
    hashes = {"model.safetensors": write_tensors(scratch / "model.safetensors", model.state_dict())}
    opt_state = optimizer.state_dict()["state"]
    hashes["optimizer.safetensors"] = write_tensors(
        scratch / "optimizer.safetensors",
        {f"{i}.{k}": v for i, s in opt_state.items() for k, v in s.items() if torch.is_tensor(v)},
    )
    scalars = {
        str(i): {k: v for k, v in s.items() if not torch.is_tensor(v)} for i, s in opt_state.items()
    }
    own = {**hashes, "history.json": write_json(scratch / "history.json", history)}
    own["state.json"] = write_json(scratch / "state.json", {"step": step, "optimizer_scalars": scalars, "sha256": hashes})
    digest = write_manifest(scratch, own)
    key = _checkpoint_key(step)
    if os.path.lexists(final):  # first out of the run's manifest, so no crash leaves it named but gone
        update_manifest(run_dir, {key: None})
        _remove(final)
    os.replace(scratch, final)
    _fsync_dir(final.parent)
    update_manifest(run_dir, {key: digest})
    return final


def _remove(path: Path) -> None:
    """Remove a file, a symlink (never what it points to) or a folder of our own."""
    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path)


def load_checkpoint(
    run_dir: Path, step: int, model: nn.Module, optimizer: torch.optim.Optimizer
) -> list[dict[str, Any]]:
    """Restore model and optimizer in place from the checkpoint at `step`, every file verified
    (a checkpoint that cannot be verified is never resumed); return its history."""
    run_dir = Path(run_dir)
    source, own, state_json = read_checkpoint(run_dir, step)
    load_state(model, read_verified_tensors(source, "model.safetensors", own, run_dir), source / "model.safetensors")
    if "optimizer.safetensors" not in own:
        raise CheckpointError(f"{source} holds no optimizer state (a released trajectory?); it cannot be resumed")
    state: dict[int, dict[str, Any]] = {}
    try:
        for key, value in read_verified_tensors(source, "optimizer.safetensors", own, run_dir).items():
            index, name = key.split(".", 1)
            state.setdefault(int(index), {})[name] = value
        for index, scalars in state_json["optimizer_scalars"].items():
            state.setdefault(int(index), {}).update(scalars)
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise CheckpointError(f"{source} optimizer state is malformed: {err}") from None
    groups = optimizer.state_dict()["param_groups"]
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError) as err:
        raise CheckpointError(f"{source} optimizer state does not match the config: {err}") from None
    for value in list(model.state_dict().values()):
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise CheckpointError(f"{source}/model.safetensors holds NaN or infinite weights; it cannot be resumed")
    return _checked_history(source / "history.json", read_verified_json(source, "history.json", own, run_dir))


def drop_checkpoint(run_dir: Path, step: int) -> None:
    """Remove the checkpoint at `step` from the run: out of its manifest first, then the folder,
    so no crash leaves the manifest naming a checkpoint that is gone."""
    update_manifest(run_dir, {_checkpoint_key(step): None})
    _no_links_below(run_dir, checkpoint_dir(run_dir, step) / MANIFEST)
    _remove(checkpoint_dir(run_dir, step))
