"""`interp import --group`: a checkpoint trained on a finite group lands on that group's task,
token t being element t of the group's table; an analytic group-composition network in
Chughtai et al.'s layout (W_x, W_y, W, W_U) built here from closed-form representations is
imported and read back exactly."""

import json
import math

import pytest
import torch
from safetensors.torch import save_file

import interp
from interp.cli import main
from interp.core.groups import symmetric
from interp.core.irreps import real_irreps
from interp.families.importers import CheckpointImportError
from test_importers import all_pairs, embed_mlp_forward, embed_mlp_state, hooked_state, legacy_forward


def their_dihedral_table(n: int) -> torch.Tensor:
    """D_n with index r + n·s = r^r s^s (rotations, then r^i s): (r^a s^x)(r^b s^y) =
    r^(a + (−1)^x b) s^(x+y) — not the library's order, whose reflections are s r^i."""
    rot, flip = torch.arange(2 * n) % n, torch.arange(2 * n) // n
    a, x, b, y = rot[:, None], flip[:, None], rot[None, :], flip[None, :]
    return (a + torch.where(x == 1, -b, b)) % n + n * ((x + y) % 2)


def write_group(path, name: str, table: torch.Tensor) -> str:
    path.write_text(json.dumps({"name": name, "table": table.tolist()}))
    return str(path)


def test_an_embedding_mlp_trained_on_s4_lands_on_the_group_task(tmp_path, capsys):
    group = symmetric(4)
    state = embed_mlp_state(p=group.order, e=8, h=32)
    torch.save(state, tmp_path / "mlp.pt")
    out = tmp_path / "run"
    assert main(["import", str(tmp_path / "mlp.pt"), "--format", "embed-mlp", "--group", "S4",
                 "--train-fraction", "0.4", "--split-seed", "3", "--out", str(out)]) == 0
    assert "S4 (a∘b)" in capsys.readouterr().out
    run = interp.load_run(out)
    assert (run.spec.task.group, run.spec.task.p, run.spec.task.train_fraction) == ("S4", 24, 0.4)
    pairs = all_pairs(24)
    assert torch.equal(run.dataset.inputs, pairs) and torch.equal(run.dataset.true_labels, group.table[pairs[:, 0], pairs[:, 1]])
    assert int(run.dataset.train_mask.sum()) == round(0.4 * 576)
    with torch.no_grad():
        source = embed_mlp_forward(state, 24)
        torch.testing.assert_close(interp.logits(run.model, pairs), source, atol=1e-4, rtol=0)
    right = source.argmax(-1) == run.dataset.true_labels
    assert run.final_metrics["test_acc"] == pytest.approx(float(right[run.dataset.test_mask].double().mean()), abs=1e-9)
    again = interp.import_checkpoint(tmp_path / "mlp.pt", "embed-mlp", group=group, train_fraction=0.4, split_seed=3)
    assert again.dataset.same_as(run.dataset), "a Group, its name: the same task and split"


def test_a_legacy_transformer_on_s3_reads_the_elements_then_equals(tmp_path):
    state = hooked_state(p=6, n_heads=2, d_head=8)  # d_vocab 7: the six elements, then `=`
    torch.save(state, tmp_path / "t.pt")
    run = interp.import_checkpoint(tmp_path / "t.pt", "hooked-transformer", group="S3", train_fraction=0.5,
                                   out=tmp_path / "run")
    run = interp.load_run(run.path)
    assert run.spec.model.arch == "transformer" and run.spec.task.group == "S3"
    with torch.no_grad():
        torch.testing.assert_close(interp.logits(run.model, all_pairs(6)), legacy_forward(state, 6), atol=1e-4, rtol=0)
    table = symmetric(3).table
    assert torch.equal(run.dataset.true_labels, table.flatten())


def test_a_json_table_sets_the_element_order_and_a_dataset_file_the_split(tmp_path):
    n = 5
    table = their_dihedral_table(n)
    assert not torch.equal(table, interp.core.groups.dihedral(n).table), "another order than the built-in's"
    path = write_group(tmp_path / "d5.json", "D5_theirs", table)
    state = embed_mlp_state(p=2 * n)
    torch.save(state, tmp_path / "mlp.pt")
    pairs = all_pairs(2 * n)
    truth = table[pairs[:, 0], pairs[:, 1]]
    train = torch.arange(len(pairs)) % 3 == 0
    save_file({"inputs": pairs, "observed_labels": truth, "train_mask": train}, tmp_path / "data.safetensors")
    out = tmp_path / "run"
    assert main(["import", str(tmp_path / "mlp.pt"), "--format", "embed-mlp", "--group", path, "--task", "sub",
                 "--dataset", str(tmp_path / "data.safetensors"), "--out", str(out)]) == 2, "sub: labels a∘b⁻¹"
    assert main(["import", str(tmp_path / "mlp.pt"), "--format", "embed-mlp", "--group", path,
                 "--dataset", str(tmp_path / "data.safetensors"), "--out", str(out)]) == 0
    run = interp.load_run(out)
    assert run.spec.task.group == "D5_theirs" and torch.equal(run.spec.task.structure.table, table)
    assert torch.equal(run.dataset.true_labels, truth) and torch.equal(run.dataset.train_mask, train)
    with torch.no_grad():
        torch.testing.assert_close(interp.logits(run.model, pairs), embed_mlp_forward(state, 2 * n), atol=1e-4, rtol=0)
    builtin = write_group(tmp_path / "d5b.json", "D5", interp.core.groups.dihedral(n).table)
    with pytest.raises(CheckpointImportError, match="true_labels|observed_labels differ"):  # the wrong table
        interp.import_checkpoint(tmp_path / "mlp.pt", "embed-mlp", group=builtin, dataset=tmp_path / "data.safetensors")


@pytest.mark.parametrize("args,message", [
    (["--format", "embed-mlp", "--group", "S4"], "has 23 tokens; a model on S4 has one per element, 24"),
    (["--format", "hooked-transformer", "--group", "S4"], "has 23 input tokens; a transformer on S4 (24 elements) has |G| + 1 = 25"),
    (["--format", "embed-mlp", "--group", "Q8"], "unknown group 'Q8'"),
    (["--format", "embed-mlp", "--group", "missing.json"], "missing.json"),
    (["--format", "embed-mlp", "--group", "C23", "--p", "24"], "p = 24 but C23 has 23 elements"),
    (["--format", "embed-mlp", "--group", "C23", "--task", "mul"], "not a group operation"),
])
def test_a_checkpoint_that_does_not_fit_the_group_is_refused_in_one_line(tmp_path, capsys, args, message):
    torch.save(embed_mlp_state(p=23), tmp_path / "embed-mlp.pt")
    torch.save(hooked_state(p=22), tmp_path / "hooked-transformer.pt")  # 23 tokens: 22 elements and `=`
    source = tmp_path / f"{args[1]}.pt"
    assert main(["import", str(source), *args, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("interp: error:") and message in err and "\n" not in err
    assert not (tmp_path / "run").exists()


def test_a_dataset_of_another_group_is_refused(tmp_path):
    torch.save(embed_mlp_state(p=6), tmp_path / "mlp.pt")
    c6 = interp.import_checkpoint(tmp_path / "mlp.pt", "embed-mlp", group="C6").dataset
    with pytest.raises(CheckpointImportError, match=r"the dataset is C6 \(a∘b\), the model S3 \(a∘b\)"):
        interp.import_checkpoint(tmp_path / "mlp.pt", "embed-mlp", group="S3", dataset=c6)
    with pytest.raises(CheckpointImportError, match="the dataset is C6"):
        interp.import_checkpoint(tmp_path / "mlp.pt", "embed-mlp", dataset=c6)  # Z_6 is not C6's task


# --- an analytic group-composition network in Chughtai et al.'s layout ------------------------


def chughtai_layout_net(reps: list[torch.Tensor], scale: float = 2.0) -> dict:
    """Their embedding MLP (W_x, W_y [n, e], W [2e, h], W_U [h, n]) computing, with a quadratic
    activation, logit(c) = scale·Σ_ρ d_ρ tr(ρ(a)ρ(b)ρ(c)ᵀ): the embeddings are vec ρ(a), each
    product ρ(a)_ij ρ(b)_jk comes from two hidden neurons reading α ρ(a)_ij ± α ρ(b)_jk
    ((x + y)² − (x − y)² = 4xy), written out by ±γ ρ(c)_ik with 4α²γ = scale·d. α = A/d makes
    every ρ's neurons together hold the same energy."""
    top = max(rho.shape[1] for rho in reps)
    amplitude = 2 * top ** (4 / 3) * scale ** (1 / 3)
    embed = torch.cat([rho.flatten(1) for rho in reps], 1)  # [n, Σ d²]: entry (ρ, i, j) at offset + i·d + j
    e, offset, w_in, w_out = embed.shape[1], 0, [], []
    for rho in reps:
        d = rho.shape[1]
        alpha, gamma = amplitude / d, scale * d / (4 * (amplitude / d) ** 2)
        for i in range(d):
            for j in range(d):
                for k in range(d):
                    for sign in (1.0, -1.0):
                        column = torch.zeros(2 * e, dtype=torch.float64)
                        column[offset + i * d + j] = alpha
                        column[e + offset + j * d + k] = sign * alpha
                        w_in.append(column)
                        w_out.append(sign * gamma * rho[:, i, k])
        offset += d * d
    return {"W_x": embed.float(), "W_y": embed.float().clone(), "W": torch.stack(w_in, 1).float(),
            "W_U": torch.stack(w_out).float()}


def their_forward(state: dict, n: int) -> torch.Tensor:
    a, b = all_pairs(n).T
    return torch.square(torch.cat([state["W_x"][a], state["W_y"][b]], 1).double() @ state["W"].double()) @ state["W_U"].double()


def s5_sign_and_standard() -> list[torch.Tensor]:
    """S5's standard irrep (permutation matrices on the sum-zero subspace, orthonormal frame)
    and sign (their determinant), on the built-in S5's elements (one-line notation)."""
    group = symmetric(5)
    perms = torch.tensor([[int(c) for c in name] for name in group.elements])
    matrices = torch.zeros(120, 5, 5, dtype=torch.float64)
    matrices[torch.arange(120)[:, None], perms, torch.arange(5)] = 1  # e_i ↦ e_{x(i)}
    frame = torch.linalg.qr(torch.cat([torch.ones(5, 1), torch.eye(5)[:, :-1]], 1).double())[0][:, 1:]
    return [frame.T @ matrices @ frame, torch.linalg.det(matrices).round()[:, None, None]]


def dihedral_irrep(table: torch.Tensor, n: int, k: int) -> torch.Tensor:
    """D_n's 2-dim irrep k in the order of `their_dihedral_table`: r^i ↦ rotation by 2πki/n,
    r^i s ↦ that rotation times diag(1, −1)."""
    angle = 2 * math.pi * k * (torch.arange(2 * n) % n).double() / n
    rot = torch.stack([torch.stack([angle.cos(), -angle.sin()], -1), torch.stack([angle.sin(), angle.cos()], -1)], -2)
    flip = torch.where(torch.arange(2 * n) >= n, -1.0, 1.0).double()
    rho = rot @ torch.stack([torch.ones(2 * n, dtype=torch.float64), flip], -1).diag_embed()
    torch.testing.assert_close(rho[table], rho[:, None] @ rho[None, :])  # a representation of this table
    return rho


def assert_imported_network_reads_back(tmp_path, group_arg, reps: list[torch.Tensor], order: int) -> None:
    state = chughtai_layout_net(reps)
    torch.save(state, tmp_path / "theirs.pt")
    out = tmp_path / "run"
    assert main(["import", str(tmp_path / "theirs.pt"), "--format", "embed-mlp", "--act", "quadratic", "--group",
                 group_arg, "--train-fraction", "0.4", "--out", str(out)]) == 0
    run = interp.load_run(out)
    pairs = all_pairs(order)
    source = their_forward(state, order)
    with torch.no_grad():
        torch.testing.assert_close(interp.logits(run.model, pairs).double(), source, atol=1e-3, rtol=1e-5)
    assert bool((source.argmax(-1) == run.dataset.true_labels).all()), "it computes a ∘ b on every pair"
    extraction = interp.analyze(run, "filtration")
    found = [real_irreps(run.spec.task.structure)[k].character for k in extraction.key_frequencies]
    planted = [rho.diagonal(dim1=1, dim2=2).sum(-1) for rho in reps]
    assert len(found) == len(planted) and all(any(torch.allclose(f, chi, atol=1e-9) for f in found) for chi in planted)
    full, restricted, excluded = (extraction.rows[m] for m in ("raw", "restricted", "excluded"))
    assert full["test_loss"] < 1e-3 and restricted["test_loss"] == pytest.approx(full["test_loss"], abs=1e-4)
    assert restricted["test_acc"] == 1.0
    assert excluded["test_loss"] == pytest.approx(math.log(order), rel=1e-4), "no function of a∘b is left"
    spectra = interp.analyze(run, "fourier")
    assert sorted(spectra.key_set()) == sorted(extraction.key_frequencies), "fourier's key irreps are the filters'"


def test_an_analytic_s5_network_in_their_layout_reads_back_sign_and_standard(tmp_path):
    assert_imported_network_reads_back(tmp_path, "S5", s5_sign_and_standard(), 120)


def test_an_analytic_dihedral_network_in_their_order_reads_back_its_chosen_irreps(tmp_path):
    n = 13
    table = their_dihedral_table(n)
    reps = [dihedral_irrep(table, n, k) for k in (2, 5, 6)]
    assert_imported_network_reads_back(tmp_path, write_group(tmp_path / "d13.json", "D13_theirs", table), reps, 2 * n)


def test_the_reproduction_script_rebuilds_their_order_split_and_measures(tmp_path):
    """analyses/chughtai_universality.py: their D_n order, their split and their definitions of
    key irreps and restricted / excluded loss, on the analytic S5 network (checked against their
    released values in docs/reproductions.md)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "analyses" / "chughtai_universality.py"
    spec = importlib.util.spec_from_file_location("chughtai_universality", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert torch.equal(script.their_dihedral(7).table, their_dihedral_table(7))
    torch.manual_seed(2)
    order = torch.randperm(100)
    assert torch.equal(script.their_split(10, 0.4, 2).nonzero().squeeze(1), order[:40].sort().values)
    assert torch.equal(script.their_split(10, 0.4, 0), torch.arange(100) < 40), "seed 0: not shuffled"
    torch.save(chughtai_layout_net(s5_sign_and_standard()), tmp_path / "theirs.pt")
    run = interp.import_checkpoint(tmp_path / "theirs.pt", "embed-mlp", group="S5", act="quadratic", train_fraction=0.4)
    measures = script.their_measures(run)
    assert measures["key_irreps"] == ["sign", "standard"]
    assert sorted(measures["names"].values()) == sorted(["trivial", "sign", "standard", "standard_sign", "s5_5d_a",
                                                         "s5_5d_b", "s5_6d"])
    assert measures["total_hidden_restricted_loss"] == pytest.approx(measures["all_loss"], abs=1e-5)
    assert measures["total_hidden_excluded_loss"] == pytest.approx(math.log(120), rel=1e-4)
    # the centred logits are the two key irreps' trace tensors, so nothing is left without them
    assert measures["total_logit_restricted_loss"] == pytest.approx(measures["all_loss"], abs=1e-5)
    assert measures["total_logit_excluded_loss"] == pytest.approx(math.log(120), rel=1e-4)
    assert measures["per_irrep"]["s5_6d"]["logit_trace_similarity"] == pytest.approx(0, abs=1e-6)
