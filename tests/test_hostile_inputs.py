"""Hostile inputs (issue 31): each is bounded before it costs anything, refused in one line that
speaks of what the user gave, and leaves nothing behind. Small files that claim large shapes,
group tables whose checks could cost n³, tensors without numbers, masks that are not masks,
weights that are not numbers, pickles, symbolic links, and two writers of one folder."""

from __future__ import annotations

import itertools
import json
import os
import pickle

import pytest
import torch

import interp
from interp.cli import main
from interp.core.groups import Group, GroupError, cyclic, read_table, symmetric
from interp.core.specs import SpecError, TaskSpec
from interp.families.importers import CheckpointImportError, import_model, read_state_dict
from interp.training.rundir import locked

P = 5


def two_layer_state(p: int = P, width: int = 6, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {"U": torch.randn(width, p, generator=gen), "W": torch.randn(p, width, generator=gen)}


def one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message and "Traceback" not in message
    return message


@pytest.fixture
def no_model_is_built(monkeypatch):
    """Building a model (or folding weights in float64) fails the test: the refusal must come first."""
    from interp.families import two_layer, transformer

    def refuse(*args, **kwargs):
        raise AssertionError("a model was built before the memory was checked")

    for family in (two_layer.FAMILY, transformer.FAMILY):
        monkeypatch.setattr(family, "build", refuse)
    monkeypatch.setattr(torch.Tensor, "double", refuse)


# --- memory bombs: shapes read before anything is laid out ------------------------------------


def expanded(*shape: int) -> torch.Tensor:
    """A tensor of `shape` that stores one number (stride 0): a file of 2 KB claiming gigabytes."""
    return torch.zeros(1).expand(*shape)


@pytest.mark.parametrize("fmt, state", [
    ("two-layer", {"U": expanded(200_000, 200_000), "W": expanded(200_000, 200_000)}),
    ("embed-mlp", {"W_x": expanded(200_000, 4), "W_y": expanded(200_000, 4), "W": expanded(8, 100_000),
                   "W_U": expanded(100_000, 200_000)}),
])
def test_a_small_file_claiming_huge_shapes_is_refused_before_anything_is_allocated(tmp_path, fmt, state,
                                                                                   no_model_is_built):
    torch.save(state, tmp_path / "bomb.pt")
    assert (tmp_path / "bomb.pt").stat().st_size < 4096
    with pytest.raises(CheckpointImportError, match="over the memory limit of 32.0 GiB") as err:
        import_model(tmp_path / "bomb.pt", fmt)
    assert "bomb.pt" in one_line(err) and "INTERP_MAX_BYTES" in str(err.value)


def test_a_dataset_file_claiming_huge_shapes_is_refused_before_it_is_read_as_a_dataset(tmp_path, monkeypatch):
    from interp.core import tasks
    from interp.training.importing import read_dataset_file

    torch.save({"inputs": torch.zeros(1, 1, dtype=torch.long).expand(10**10, 2),
                "observed_labels": torch.zeros(1, dtype=torch.long).expand(10**10),
                "train_mask": torch.ones(1, dtype=torch.bool).expand(10**10)}, tmp_path / "data.pt")

    def refuse(*args, **kwargs):
        raise AssertionError("the dataset was laid out before its size was checked")

    monkeypatch.setattr(tasks.Dataset, "from_tensors", refuse)
    with pytest.raises(CheckpointImportError, match=r"the largest, inputs, of shape \[10000000000, 2\]"):
        read_dataset_file(tmp_path / "data.pt", TaskSpec(p=P))


def test_a_model_whose_run_would_not_fit_is_refused_before_it_is_built(tmp_path, no_model_is_built):
    # 36 MB of tensors once laid out, but a run over all p² = 9·10⁶ pairs of a width-3000 net is ~600 GiB
    torch.save({"U": expanded(3000, 3000), "W": expanded(3000, 3000)}, tmp_path / "wide.pt")
    with pytest.raises(CheckpointImportError, match=r"wide.pt: .*needs about \d+\.\d GiB \(p=3000") as err:
        import_model(tmp_path / "wide.pt", "two-layer")
    one_line(err)


def test_a_compressed_archive_is_refused_by_what_it_unpacks_to(tmp_path, monkeypatch):
    """torch reads deflated zip entries: 36 MB of zeros fit in a file of ~40 KB. The sizes the
    archive records are checked before torch.load unpacks anything."""
    import zipfile

    torch.save({"U": torch.zeros(3000, 3000), "W": torch.zeros(3000, 3000)}, tmp_path / "plain.pt")
    with zipfile.ZipFile(tmp_path / "plain.pt") as src, \
            zipfile.ZipFile(tmp_path / "packed.pt", "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    assert (tmp_path / "packed.pt").stat().st_size < 2**20
    monkeypatch.setenv("INTERP_MAX_BYTES", str(50 * 2**20))

    def unpack(*args, **kwargs):
        raise AssertionError("torch.load unpacked the archive before its sizes were checked")

    monkeypatch.setattr(torch, "load", unpack)
    with pytest.raises(CheckpointImportError, match="its storages, unpacked, would take 0.1 GiB") as err:
        read_state_dict(tmp_path / "packed.pt")
    one_line(err)


def test_the_limit_is_the_one_a_spec_obeys(tmp_path, monkeypatch):
    from safetensors.torch import save_file

    save_file(two_layer_state(), tmp_path / "small.safetensors")
    assert import_model(tmp_path / "small.safetensors", "two-layer") is not None
    monkeypatch.setenv("INTERP_MAX_BYTES", "100")  # below the file's own size: refused before it is read
    with pytest.raises(CheckpointImportError, match="the file would take 0.0 GiB, over the memory limit"):
        import_model(tmp_path / "small.safetensors", "two-layer")


def _peak_rss() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))


def test_group_tables_of_order_700_and_1500_cost_what_they_hold(tmp_path):
    """The checks of a table of order n take O(n²) memory: reading orders 700 and 1500 from JSON
    raises this process's peak resident memory by well under 1 GiB (an n³ associativity check
    asks for 2.7 and 27 GiB, twice)."""
    for n in (700, 1500):
        (tmp_path / f"c{n}.json").write_text(json.dumps({"table": cyclic(n).table.tolist()}))
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")  # the peak starts again from what is resident now
    except OSError:
        pytest.skip("this kernel does not let a process reset its peak memory (/proc/self/clear_refs)")
    before = _peak_rss()
    assert [read_table(str(tmp_path / f"c{n}.json")).order for n in (700, 1500)] == [700, 1500]
    assert _peak_rss() - before < 2**30


def _associative_by_brute_force(table: torch.Tensor) -> bool:
    return torch.equal(table[table], table[:, table])


def _loops(n: int):
    """Every Latin square of order n whose first row and column are 0..n−1 (element 0 the identity)."""
    rows = [list(range(n))]

    def extend(rows):
        if len(rows) == n:
            yield [list(r) for r in rows]
            return
        i = len(rows)
        for rest in itertools.permutations([x for x in range(n) if x != i]):
            row = [i, *rest]
            if all(row[j] != r[j] for r in rows for j in range(n)):
                yield from extend(rows + [row])

    yield from extend(rows)


def test_associativity_by_generators_agrees_with_all_n3_triples():
    """Light's test on a generating set against the brute-force check over all triples, on every
    loop of order 5 (56 tables: 6 labelings of C5, 50 that are not groups) and order 4."""
    verdicts = []
    for n in (4, 5):
        for rows in _loops(n):
            truth = _associative_by_brute_force(torch.tensor(rows))
            try:
                Group.from_table("loop", rows)
                verdicts.append((truth, True))
            except GroupError as err:
                assert "associative" in str(err)
                verdicts.append((truth, False))
    assert len(verdicts) == 4 + 56 and all(truth == passed for truth, passed in verdicts)
    assert sum(passed for _, passed in verdicts) == 4 + 6


def test_every_generator_is_checked():
    """A loop of order 6 (found by brute force among all 9408): 1 ∘ 1 = 0, so element 1 alone
    generates {0, 1}, and (x∘1)∘y = x∘(1∘y) for all x, y: associativity fails only through a
    second generator."""
    loop = [[0, 1, 2, 3, 4, 5], [1, 0, 3, 2, 5, 4], [2, 3, 4, 5, 0, 1], [3, 2, 5, 4, 1, 0], [4, 5, 0, 1, 3, 2],
            [5, 4, 1, 0, 2, 3]]
    table = torch.tensor(loop)
    assert torch.equal(table[table[:, 1]], table[:, table[1]]) and not _associative_by_brute_force(table)
    with pytest.raises(GroupError, match="not associative"):
        Group.from_table("loop6", loop)


def test_a_large_table_that_is_not_a_group_is_refused_quickly():
    """C_1000 with one 2×2 square of entries swapped: still a Latin square with an identity,
    no longer associative (found with O(n²) memory, not 8 GB)."""
    table = cyclic(1000).table.clone()
    a, b, half = 3, 7, 500
    table[a, b], table[a, b + half] = table[a, b + half].clone(), table[a, b].clone()
    table[a + half, b], table[a + half, b + half] = table[a + half, b + half].clone(), table[a + half, b].clone()
    with pytest.raises(GroupError, match="not associative"):
        Group.from_table("almost", table)
    assert Group.from_table("S4", symmetric(4).table).order == 24


@pytest.mark.parametrize("text, message", [
    ('{"table": {"0": [0]}}', "got dict"),
    ('{"table": ' + "[" * 50_000 + "]" * 50_000 + "}", "nested too deep"),
    ('{"table": [[[0]]]}', "square matrix"),
    ('{"table": [[true, false], [false, true]]}', "true/false"),
    ('{"table": [[0, 1], [1, 0.5]]}', "square matrix"),
])
def test_tables_that_are_not_matrices_of_indices_are_one_line(tmp_path, text, message):
    (tmp_path / "g.json").write_text(text)
    with pytest.raises(GroupError, match=message) as err:
        read_table(str(tmp_path / "g.json"))
    one_line(err)


def test_true_false_entries_are_refused_through_the_spec_too():
    with pytest.raises(SpecError, match="element indices"):
        TaskSpec(group="bool", table=((True, False), (False, True)))
    with pytest.raises(GroupError, match="true/false"):
        Group.from_table("bool", [[True, False], [False, True]])
    assert TaskSpec(group="C2", table=((0, 1), (1, 0))).p == 2


# --- tensors without numbers, masks that are not masks -------------------------------------------


@pytest.mark.parametrize("make, message", [
    (lambda s: {**s, "U": torch.zeros(6, P, device="meta")}, "U is a meta tensor"),
    (lambda s: {**s, "U": s["U"].to_sparse()}, "U is a sparse_coo tensor"),
])
def test_meta_and_sparse_tensors_are_one_line(tmp_path, make, message):
    torch.save(make(two_layer_state()), tmp_path / "odd.pt")
    with pytest.raises(CheckpointImportError, match=message) as err:
        read_state_dict(tmp_path / "odd.pt")
    one_line(err)
    assert main(["import", str(tmp_path / "odd.pt"), "--format", "two-layer", "--out", str(tmp_path / "run")]) == 2
    assert not (tmp_path / "run").exists()


def _dataset_file(tmp_path, mask: torch.Tensor):
    from safetensors.torch import save_file

    pairs = torch.cartesian_prod(torch.arange(P), torch.arange(P))
    save_file({"inputs": pairs, "observed_labels": pairs.sum(1) % P, "train_mask": mask}, tmp_path / "data.safetensors")
    return tmp_path / "data.safetensors"


def test_a_float_mask_is_refused_not_cast(tmp_path):
    torch.save(two_layer_state(), tmp_path / "m.pt")
    mask = torch.full((P * P,), 0.3)
    mask[::2] = 0.2  # bool() would make every pair a training pair
    with pytest.raises(CheckpointImportError, match="train_mask must be boolean") as err:
        interp.import_checkpoint(tmp_path / "m.pt", "two-layer", dataset=_dataset_file(tmp_path, mask))
    one_line(err)
    with pytest.raises(CheckpointImportError, match="train_mask must be boolean"):
        interp.import_checkpoint(tmp_path / "m.pt", "two-layer", dataset=_dataset_file(tmp_path, torch.arange(P * P) % 3))
    zero_one = (torch.arange(P * P) % 2).to(torch.uint8)  # 0/1 integers are a mask
    run = interp.import_checkpoint(tmp_path / "m.pt", "two-layer", dataset=_dataset_file(tmp_path, zero_one))
    assert torch.equal(run.dataset.train_mask, zero_one.bool())


# --- weights that are not numbers: named, nothing left behind ------------------------------------


@pytest.mark.parametrize("fmt, key, value, kind", [
    ("two-layer", "U", float("nan"), "NaN"),
    ("two-layer", "W", float("-inf"), "inf"),
    ("embed-mlp", "W_U", float("nan"), "NaN"),
])
def test_nan_and_inf_weights_are_named_and_leave_nothing(tmp_path, capsys, fmt, key, value, kind):
    if fmt == "two-layer":
        state = two_layer_state()
    else:
        gen = torch.Generator().manual_seed(0)
        state = {"W_x": torch.randn(P, 3, generator=gen), "W_y": torch.randn(P, 3, generator=gen),
                 "W": torch.randn(6, 4, generator=gen), "W_U": torch.randn(4, P, generator=gen)}
    good = {k: v.clone() for k, v in state.items()}
    state[key][0, 1] = value
    torch.save(state, tmp_path / "w.pt")
    out = tmp_path / "run"
    assert main(["import", str(tmp_path / "w.pt"), "--format", fmt, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert f"weights contain {kind} in {key} (1 of" in err and "history.json" not in err and "\n" not in err
    assert not out.exists()
    torch.save(good, tmp_path / "w.pt")  # the rerun with finite weights goes through
    assert main(["import", str(tmp_path / "w.pt"), "--format", fmt, "--out", str(out)]) == 0
    assert interp.load_run(out).step == 0


def test_weights_that_overflow_float32_are_refused(tmp_path):
    state = {k: v.double() for k, v in two_layer_state().items()}
    state["U"][2, 3] = 1e300  # finite in float64, inf once the family's float32 holds it
    torch.save(state, tmp_path / "big.pt")
    with pytest.raises(CheckpointImportError, match="overflow float32 in U"):
        import_model(tmp_path / "big.pt", "two-layer")


def test_finite_weights_whose_logits_overflow_are_refused_before_anything_is_written(tmp_path):
    torch.save({k: torch.full_like(v, 1e30) for k, v in two_layer_state().items()}, tmp_path / "loud.pt")
    with pytest.raises(CheckpointImportError, match=r"loss on its dataset is nan \(its logits overflow") as err:
        interp.import_checkpoint(tmp_path / "loud.pt", "two-layer", out=tmp_path / "run")
    one_line(err)
    assert not (tmp_path / "run").exists()


def test_a_failure_while_writing_leaves_nothing_behind(tmp_path, monkeypatch):
    from interp.training import rundir

    torch.save(two_layer_state(), tmp_path / "m.pt")
    real = rundir.write_json

    def full_disk(path, obj):
        if str(path).endswith("config.json"):
            raise OSError(28, "No space left on device", str(path))
        return real(path, obj)

    monkeypatch.setattr(rundir, "write_json", full_disk)
    with pytest.raises(OSError):
        interp.import_checkpoint(tmp_path / "m.pt", "two-layer", out=tmp_path / "run")
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == ["m.pt"]


# --- pickles and links: the importer's own words -------------------------------------------------


class Payload:
    """Pickled as a call of a function here; weights_only must refuse it without running it."""

    def __reduce__(self):
        return (os.getpid, ())


def test_a_refused_pickle_gets_the_importer_s_message(tmp_path):
    torch.save({**two_layer_state(), "extra": Payload()}, tmp_path / "p.pt")
    with pytest.raises(CheckpointImportError, match=r"pickles objects other than tensors .*\(posix.getpid\)") as err:
        import_model(tmp_path / "p.pt", "two-layer")
    message = one_line(err)
    assert "weights_only=True" in message and "will likely succeed" not in message and "weights_only=False" not in message


@pytest.mark.parametrize("wording", ["Weights only load failed. Re-running with weights_only=False will likely succeed.",
                                     "some future wording that names nothing we know"])
def test_the_pickle_message_does_not_depend_on_torch_s_wording(tmp_path, monkeypatch, wording):
    torch.save(two_layer_state(), tmp_path / "m.pt")

    def refuse(*args, **kwargs):
        raise pickle.UnpicklingError(wording)

    monkeypatch.setattr(torch, "load", refuse)
    with pytest.raises(CheckpointImportError, match=r"torch.load\(weights_only=True\), the only way") as err:
        import_model(tmp_path / "m.pt", "two-layer")
    assert "weights_only=False" not in one_line(err)


def test_a_symbolic_link_to_a_checkpoint_is_the_checkpoint(tmp_path, capsys):
    from interp.training.rundir import sha256

    torch.save(two_layer_state(), tmp_path / "m.pt")
    os.symlink(tmp_path / "m.pt", tmp_path / "latest.pt")
    out = tmp_path / "run"
    assert main(["import", str(tmp_path / "latest.pt"), "--format", "two-layer", "--out", str(out)]) == 0
    recorded = json.loads((out / "config.json").read_text())["imported_from"]
    assert recorded["file"] == "latest.pt" and recorded["sha256"] == sha256(tmp_path / "m.pt")
    os.symlink(tmp_path / "gone.pt", tmp_path / "dangling.pt")
    capsys.readouterr()
    assert main(["import", str(tmp_path / "dangling.pt"), "--format", "two-layer", "--out", str(tmp_path / "r2")]) == 2
    err = capsys.readouterr().err
    assert "dangling.pt is a symbolic link to" in err and "run directory" not in err


# --- two writers of one folder -------------------------------------------------------------------


def test_interp_edit_takes_the_lock_of_the_folder_it_writes(tmp_path, capsys):
    from interp.core.specs import NoiseSpec
    from interp.families.base import family_of
    from interp.planted import planted_two_layer
    from interp.training.rundir import Run, save_run

    ds = interp.make_dataset(TaskSpec(p=7, train_fraction=0.5), NoiseSpec(kind="wrong", rate=0.2, seed=1))
    model = planted_two_layer(ds, act="relu", seed=2).model
    spec = interp.RunSpec(task=ds.task, noise=ds.noise, model=family_of(model).spec(model))
    save_run(tmp_path / "run", Run(spec, model, [{"step": 0}], 0, None, ds))
    out = tmp_path / "edited"
    with locked(out):  # another interp process writing the folder
        assert main(["edit", str(tmp_path / "run"), "--out", str(out)]) == 2
        assert "in use by another interp process" in capsys.readouterr().err
        assert not out.exists()
