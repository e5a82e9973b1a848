"""Conformance suites for model families and analyses, ours or a third party's (after
scikit-learn's `check_estimator` / `parametrize_with_checks`).

`check_family(family, spec)` and `check_analysis(analysis)` run every check of the contract and
raise an AssertionError that names the check broken. Each check is a small function (listed by
`family_checks` / `analysis_checks`, named after the contract it tests), so that a pytest suite
can run them one by one with `parametrize_with_checks`:

    from interp.testing import parametrize_with_checks

    @parametrize_with_checks([(MY_FAMILY, MySpec(width=16)), MY_ANALYSIS])
    def test_conformance(subject, check):
        check(subject)

A family is checked while registered (`interp.families.register`), an analysis likewise
(`register_analysis`, or an entry point). The checks train a tiny run (p = 11, ten steps, 30%
wrong labels, kept in a temporary folder until the process ends; a family that reads feature
vectors, `inputs = "features"`, trains on digits instead) once per (family, spec), and compute
each analysis once per run; an analysis is checked on the built-in families' runs
(`standard_cases`: each on its task, and the two-layer net on S3).

`result_differences(a, b)` lists where two results (as JSON) differ beyond float64 rounding, and
`NARROW_KERNELS`, `AVX2_KERNELS` and `GEMM_KERNELS` are environment variables that give a fresh
process's torch, MKL, oneDNN and OpenBLAS other kernels (so other summation orders, as on another
CPU): together, how tests/test_same_on_every_cpu.py and analyses/same_on_every_cpu.py check that
an answer does not depend on the CPU.

`recovery(rows, truths)` scores a localisation's labels against a planted model's labels by
construction (precision and recall per kind and label, `precision_recall`): how a model whose
answer is known (`interp.planted`, or a third party's own) checks the localisation.
"""

from __future__ import annotations

import functools
import json
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from torch import nn

from .analysis.registry import ANALYSES, Analysis, Result, analyze
from .analysis.unit_rows import UnitRow
from .core.metrics import loss_fn
from .core.specs import MODEL_SPECS, NoiseSpec, RunSpec, TaskSpec, TrainSpec, TransformerSpec, TwoLayerSpec
from .families.base import FAMILIES, Capability, ModelFamily, family_of, in_float64
from .families.importers import import_model, to_hooked_transformer, to_torch_mlp
from .families.mlp import MLPSpec
from .families.token_transformer import TokenTransformerSpec
from .training.rundir import Run, load_run
from .training.train import train

#: The task of every check: small enough for seconds, with noisy, clean and test examples.
CHECK_TASK = TaskSpec(op="add", p=11, train_fraction=0.6)
CHECK_NOISE = NoiseSpec(kind="wrong", rate=0.3, seed=1)
#: A few steps, with a checkpoint trajectory (for the analyses that read one).
CHECK_TRAIN = TrainSpec(steps=10, lr=1e-2, eval_every=5, checkpoint_every=5)
#: A task over a group (S3), for the analyses that declare `groups=True`.
CHECK_GROUP_TASK = TaskSpec(group="S3", train_fraction=0.6)
#: The task of a family that reads feature vectors: scikit-learn's digits (64 features, 10
#: classes, shipped with it), with CHECK_NOISE's 30% wrong labels.
CHECK_FEATURE_TASK = TaskSpec(op="classify", data="digits", train_fraction=0.6)

#: Small specs of the built-in families (d_model ≥ p: a transformer's readout map can be rewritten).
SMALL_SPECS: dict[str, Any] = {
    "two_layer": TwoLayerSpec(width=24),
    "transformer": TransformerSpec(d_model=16, n_heads=2, d_head=8, d_mlp=32),
    "mlp": MLPSpec(d_in=64, widths=(16, 8)),
    "token_transformer": TokenTransformerSpec(d_in=64, n_tokens=8, d_model=16, n_heads=2, d_head=8, d_mlp=32),
}

#: The families whose checkpoints one of the importers (`families.importers.FORMATS`) reads:
#: family → (format, the model's state dict in that format).
IMPORT_FORMATS: dict[str, tuple[str, Callable[[nn.Module], dict]]] = {
    "two_layer": ("two-layer", lambda model: model.state_dict()),
    "transformer": ("hooked-transformer", to_hooked_transformer),
    "mlp": ("torch-mlp", to_torch_mlp),
}


class ConformanceError(AssertionError):
    """A family or an analysis breaks its contract; the message names the check."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConformanceError(message)


# --- what the checks share: a tiny run per (family, spec, task), a result per (analysis, run) ---------


@dataclass(frozen=True)
class Case:
    """A family and a spec of it: what a family check takes."""

    family: ModelFamily
    spec: Any
    task: TaskSpec = CHECK_TASK
    import_format: str | None = None  # an importer's format that reads this family's state dict

    def __str__(self) -> str:
        return f"{self.family.name}({self.spec})"


_folders: list[tempfile.TemporaryDirectory] = []  # removed when the process ends


@functools.lru_cache(maxsize=None)
def trained_run(case: Case) -> Run:
    """The case's tiny run, trained once and read back from its run directory."""
    folder = tempfile.TemporaryDirectory(prefix=f"interp-check-{case.family.name}-")
    _folders.append(folder)
    spec = RunSpec(task=case.task, noise=CHECK_NOISE, model=case.spec, train=CHECK_TRAIN)
    train(spec, Path(folder.name) / "run", progress=False)
    return load_run(Path(folder.name) / "run")


@functools.lru_cache(maxsize=None)
def _result(analysis: Analysis, case: Case) -> Result:
    return analyze(trained_run(case), analysis)


def standard_cases() -> list[Case]:
    """The runs every analysis is checked on: each built-in family on Z_p, and the two-layer net
    on S3."""
    return [*(Case(FAMILIES[name], spec, task_for(FAMILIES[name])) for name, spec in SMALL_SPECS.items()),
            Case(FAMILIES["two_layer"], SMALL_SPECS["two_layer"], CHECK_GROUP_TASK)]


def task_for(family: ModelFamily) -> TaskSpec:
    """The task a family is checked on: by what it reads (pairs, or feature vectors)."""
    return CHECK_FEATURE_TASK if family.inputs == "features" else CHECK_TASK


def _pairs(case: Case) -> torch.Tensor:
    return trained_run(case).dataset.inputs


# --- family checks ----------------------------------------------------------------------------------


def check_registered(case: Case) -> None:
    """The family is registered under its name, builds its spec's models and owns them."""
    family, spec = case.family, case.spec
    _require(FAMILIES.get(family.name) is family, f"{family!r} is not registered (interp.families.register)")
    _require(getattr(spec, "arch", None) == family.name, f"the spec's arch {getattr(spec, 'arch', None)!r} is not "
             f"the family's name {family.name!r}")
    _require(MODEL_SPECS.get(family.name) is family.spec_type and isinstance(spec, family.spec_type),
             f"the spec is not a {family.spec_type.__name__} (the family's spec_type)")
    model = family.build(spec, case.task.p)
    _require(isinstance(model, nn.Module) and family.owns(model) and family_of(model) is family,
             "a built model is not owned by its family (owns / family_of)")
    _require(family.spec(model) == spec, f"spec(build(spec)) is {family.spec(model)!r}, not {spec!r}")


def check_build_is_seeded(case: Case) -> None:
    """Two models built from one spec are equal; another seed gives other weights."""
    family, spec, p = case.family, case.spec, case.task.p
    first, second = family.build(spec, p).state_dict(), family.build(spec, p).state_dict()
    _require(all(torch.equal(first[k], second[k]) for k in first), "two builds of one spec differ (seed every draw)")
    if hasattr(spec, "seed"):
        from dataclasses import replace

        other = family.build(replace(spec, seed=spec.seed + 1), p).state_dict()
        _require(any(not torch.equal(first[k], other[k]) for k in first), "the spec's seed changes no weight")


def check_forward(case: Case) -> None:
    """Logits are [batch, p], the same by every path (forward, training_logits, readout_logits, run_with_cache),
    and the readout hook's units number unit_to_logit's rows."""
    family, run = case.family, trained_run(case)
    model, pairs, p = run.model, _pairs(case), case.task.p
    logits = family.forward(model, pairs)
    _require(logits.shape == (len(pairs), p),
             f"forward gives {tuple(logits.shape)}, not (batch, p) = {(len(pairs), p)}")
    with torch.no_grad():
        fast = family.training_logits(model, pairs)
    torch.testing.assert_close(fast, logits, msg=lambda m: f"training_logits differs from forward: {m}")
    with torch.no_grad():
        readout = family.readout_logits(model, pairs)
    torch.testing.assert_close(readout, logits, msg=lambda m: f"readout_logits differs from forward: {m}")
    if family.inputs == "features":  # the analyses that must not turn on rounding run a float64 copy
        with torch.no_grad():
            wide = family.forward(in_float64(model), pairs)
        torch.testing.assert_close(wide.float(), logits, rtol=1e-4, atol=1e-4,
                                   msg=lambda m: f"a float64 copy (in_float64) forwards otherwise: {m}")
    hook = family.readout_hook(model)
    cached, cache = family.run_with_cache(model, pairs, names_filter=hook)
    torch.testing.assert_close(cached, logits, msg=lambda m: f"run_with_cache's logits differ from forward: {m}")
    _require(hook in cache and cache[hook].shape == (len(pairs), family.unit_to_logit(model).shape[0]),
             f"the readout hook {hook!r} does not cache [batch, unit] with one unit per row of unit_to_logit")


def check_unit_to_logit_is_linear(case: Case) -> None:
    """Adding δ to readout unit i moves the logits by exactly δ · unit_to_logit[i]."""
    family, model, pairs = case.family, trained_run(case).model, _pairs(case)[:16]
    hook, to_logit = family.readout_hook(model), family.unit_to_logit(model)
    base = family.forward(model, pairs)
    for unit, delta in ((0, 0.5), (to_logit.shape[0] - 1, -1.25)):
        def push(value, hook=None, unit=unit, delta=delta):
            value = value.clone()
            value[..., unit] += delta  # every position: only the predicting one reaches the logits
            return value

        moved = family.forward(model, pairs, fwd_hooks=[(hook, push)])
        torch.testing.assert_close(moved - base, (delta * to_logit[unit]).expand_as(base), atol=1e-4, rtol=1e-4,
                                   msg=lambda m: f"unit {unit} of {hook} does not act on the logits through "
                                                 f"unit_to_logit: {m}")


def check_residue_weights(case: Case) -> None:
    """embedding [p, d] and unembedding [d, p] are the model's; with_residue_weights returns a
    copy holding the new ones (the model untouched), and `unembed` gives its logits. A family
    without (a, b) pairs refuses the embedding with a TypeError that says so."""
    family, model, pairs, p = case.family, trained_run(case).model, _pairs(case), case.task.p
    if not family.has(model, Capability.PAIRS):
        try:
            family.embedding(model)
        except TypeError as err:
            _require(Capability.PAIRS.description in str(err),
                     f"the refusal of the embedding does not name pairs: {err}")
            return
        raise ConformanceError(f"{family.name} reads no (a, b) pairs but its embedding did not refuse")
    embed, unembed = family.embedding(model), family.unembedding(model)
    _require(embed.shape[0] == p and unembed.shape[-1] == p, f"embedding {tuple(embed.shape)} / unembedding "
             f"{tuple(unembed.shape)} are not indexed by the {p} residues")
    before = family.forward(model, pairs)
    new_embed, new_unembed = embed.flip(0).clone(), 2 * unembed
    edited = family.with_residue_weights(model, embedding=new_embed, unembedding=new_unembed)
    torch.testing.assert_close(family.embedding(edited), new_embed, msg=lambda m: f"with_residue_weights: {m}")
    torch.testing.assert_close(family.unembedding(edited), new_unembed, msg=lambda m: f"with_residue_weights: {m}")
    torch.testing.assert_close(family.forward(model, pairs), before, rtol=0, atol=0,
                               msg=lambda m: f"with_residue_weights changed the model it copied: {m}")
    only_out = family.with_residue_weights(model, unembedding=new_unembed)
    torch.testing.assert_close(family.unembed(only_out, family.unembedding_input(model, pairs)),
                               family.forward(only_out, pairs), msg=lambda m: f"unembed differs from forward: {m}")


def check_training_step(case: Case) -> None:
    """loss_and_backward returns the loss of the logits and sets the gradients autograd gives."""
    family, model, run = case.family, trained_run(case).model, trained_run(case)
    pairs, labels = run.dataset.inputs[:32], run.dataset.labels[:32]
    params = {n: q for n, q in model.named_parameters() if q.requires_grad}
    value = family.loss_and_backward(model, params, "ce", family.training_batch(model, pairs, labels))
    expected = loss_fn("ce", family.forward(model, pairs), labels)
    _require(math.isclose(value, expected.item(), rel_tol=1e-4, abs_tol=1e-5),
             f"loss_and_backward returned {value}, the logits' loss is {expected.item()}")
    grads = torch.autograd.grad(expected, list(params.values()), allow_unused=True)
    for (name, param), grad in zip(params.items(), grads):
        if grad is not None:
            _require(param.grad is not None, f"loss_and_backward left no gradient on {name}")
            torch.testing.assert_close(param.grad, grad, atol=1e-4, rtol=1e-3,
                                       msg=lambda m, name=name: f"the gradient of {name}: {m}")
        param.grad = None


def _neuron_maps(case: Case, model: nn.Module, pairs: torch.Tensor) -> None:
    family = case.family
    maps = family.neuron_maps(model)
    n = family.unit_to_logit(model).shape[0]
    _require(set(maps) == {"u", "v", "w"} and all(m.shape == (n, case.task.p) for m in maps.values()),
             "neuron_maps gives u, v, w as [neuron, p] over the readout neurons")
    rebuilt = family.with_neuron_maps(model, maps["u"], maps["v"], maps["w"])
    torch.testing.assert_close(
        family_of(rebuilt).forward(rebuilt, pairs), family.forward(model, pairs), atol=1e-4, rtol=1e-4,
        msg=lambda m: f"rebuilt from its neuron maps the model computes otherwise: {m}")


def _heads(case: Case, model: nn.Module, pairs: torch.Tensor) -> None:
    family = case.family
    heads = family.head_hooks(model)
    _require(bool(heads) and set(family.head_value_hooks(model)) == set(heads) == set(family.head_to_logit(model)),
             "head_hooks, head_value_hooks and head_to_logit name the same hooks")
    for hook, n in heads.items():
        _require(family.head_to_logit(model)[hook].shape[0] == n and family.head_to_logit(model)[hook].shape[-1]
                 == case.task.p, f"head_to_logit[{hook}] is not [head, d_head, p]")
    for name, pattern in family.attention_patterns(model, pairs[:8]).items():
        torch.testing.assert_close(pattern.sum(-1), torch.ones(pattern.shape[:-1]), atol=1e-5, rtol=0,
                                   msg=lambda m: f"attention_patterns[{name}] does not sum to 1 over positions: {m}")


def _positions(case: Case, model: nn.Module, pairs: torch.Tensor) -> None:
    family = case.family
    hooks, n = family.patch_hooks(model), family.n_positions(model)
    _require(bool(hooks), "patch_hooks is empty")
    for name, value in family.all_positions(model, pairs[:8], hooks).items():
        _require(value.shape[:2] == (8, n), f"all_positions[{name}] is not [batch, {n} positions, ...]")


def _stacked(case: Case, model: nn.Module, pairs: torch.Tensor) -> None:
    family, run = case.family, trained_run(case)
    labels = run.dataset.labels[: len(pairs)]
    # keyed by state-dict name, parameters trainable and buffers not (as `training.batched` stacks them)
    trainable = {id(q) for q in model.parameters()}
    stacked = {n: torch.stack([t.detach(), t.detach()]).requires_grad_(id(t) in trainable)
               for n, t in model.state_dict(keep_vars=True).items()}
    batch = family.stacked_batch(case.spec, case.task.p, torch.stack([pairs, pairs]), torch.stack([labels, labels]))
    losses, _ = family.stacked_loss_and_grads(stacked, case.spec, case.task.p, batch, "ce")
    expected = loss_fn("ce", family.forward(model, pairs), labels).item()
    _require(losses.shape == (2,) and all(math.isclose(x, expected, rel_tol=1e-4) for x in losses.tolist()),
             f"stacked_loss_and_grads gives {losses.tolist()}, each network's loss is {expected}")


def _readout_map(case: Case, model: nn.Module, pairs: torch.Tensor) -> None:
    family = case.family
    hook, to_logit = family.readout_hook(model), family.unit_to_logit(model)
    new = to_logit.flip(0).clone()
    edited = family.with_unit_to_logit(model, new)
    _require(type(edited) is type(model), "with_unit_to_logit changed the architecture")
    acts = family.run_with_cache(model, pairs, names_filter=hook)[1][hook]
    torch.testing.assert_close(family.forward(edited, pairs) - family.forward(model, pairs), acts @ (new - to_logit),
                               atol=1e-3, rtol=1e-3, msg=lambda m: f"with_unit_to_logit: {m}")


#: What each capability promises, checked on a model that has it; `refusal` is the call that a
#: model without it must refuse (a TypeError naming the capability).
CAPABILITY_CHECKS: dict[Capability, tuple[Callable, Callable[[ModelFamily, Case, nn.Module, Any], Any]]] = {
    Capability.NEURON_MAPS: (_neuron_maps, lambda family, case, model, pairs: family.neuron_maps(model)),
    Capability.HEADS: (_heads, lambda family, case, model, pairs: family.head_hooks(model)),
    Capability.POSITIONS: (_positions, lambda family, case, model, pairs: family.patch_hooks(model)),
    Capability.STACKED: (_stacked, lambda family, case, model, pairs: family.stacked_batch(
        case.spec, case.task.p, pairs[None], pairs[None, :, 0])),
    Capability.READOUT_MAP: (_readout_map, lambda family, case, model, pairs: family.with_unit_to_logit(
        model, family.unit_to_logit(model))),
}


def check_capabilities_honoured(case: Case) -> None:
    """What `capabilities` claims works; what it lacks is refused with a TypeError that names it."""
    family, model, pairs = case.family, trained_run(case).model, _pairs(case)
    has = family.capabilities(model)
    for capability, (works, refusal) in CAPABILITY_CHECKS.items():
        if capability in has:
            works(case, model, pairs)
            continue
        try:
            refusal(family, case, model, pairs)
        except TypeError as err:
            _require(capability.description in str(err), f"the refusal of {capability.value} does not name it: {err}")
        else:
            raise ConformanceError(f"{family.name} lacks {capability.value} but its call did not refuse")


def check_analyses_apply_or_say_why(case: Case) -> None:
    """Every registered analysis whose needs the model has runs and serialises; every other one
    is skipped with one line that names what the family lacks."""
    run = trained_run(case)
    for name, analysis in ANALYSES.items():
        reason = analysis.skip_reason(run)
        missing = [c for c in analysis.needs if not case.family.has(run.model, c)]
        if missing:
            _require(bool(reason) and "\n" not in reason and case.family.name in reason
                     and all(c.description in reason for c in missing),
                     f"{name} needs {[c.value for c in missing]}: its skip reason {reason!r} does not say so in a line")
            continue
        if reason is None:
            _json(_result(analysis, case), name)


def check_save_load_round_trip(case: Case) -> None:
    """A trained run reads back from its directory: the same spec, family and logits, bit for bit."""
    run = trained_run(case)
    again = load_run(run.path)
    _require(again.spec == run.spec and family_of(again.model) is case.family, "load_run gives another spec or family")
    _require(again.spec.to_dict() == json.loads(json.dumps(run.spec.to_dict())), "the spec does not survive JSON")
    pairs = _pairs(case)
    torch.testing.assert_close(case.family.forward(again.model, pairs), case.family.forward(run.model, pairs), rtol=0,
                               atol=0, msg=lambda m: f"the loaded run computes other logits: {m}")


def check_importer_round_trip(case: Case) -> None:
    """Where an importer reads the family's checkpoints, the model it imports computes the same
    logits (a family with none passes)."""
    fmt, export = (case.import_format, lambda model: model.state_dict()) if case.import_format else \
        IMPORT_FORMATS.get(case.family.name, (None, None))
    if fmt is None:
        return
    from safetensors.torch import save_file

    run = trained_run(case)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.safetensors"
        save_file({k: v.contiguous() for k, v in export(run.model).items()}, str(path))
        imported = import_model(path, fmt, act=getattr(case.spec, "act", "relu"), p=case.task.p)
    pairs = _pairs(case)
    torch.testing.assert_close(family_of(imported).forward(imported, pairs), case.family.forward(run.model, pairs),
                               atol=1e-4, rtol=1e-4, msg=lambda m: f"imported as {fmt!r} it computes otherwise: {m}")


def check_memory_estimate(case: Case) -> None:
    """The family's memory estimate (0: none) covers at least its parameters in float32 with their
    gradients and two optimizer moments, and `RunSpec.memory_bytes` counts it."""
    family, p = case.family, case.task.p
    estimate = family.memory_bytes(case.spec, p)
    _require(isinstance(estimate, int) and estimate >= 0, f"memory_bytes gave {estimate!r}, not a count of bytes")
    if estimate:
        n = sum(q.numel() for q in family.build(case.spec, p).parameters())
        _require(estimate >= 16 * n, f"memory_bytes gave {estimate}, under the {16 * n} bytes of the parameters, "
                 "their gradients and two optimizer moments")
    spec = RunSpec(task=case.task, noise=CHECK_NOISE, model=case.spec, train=CHECK_TRAIN)
    without = RunSpec(task=case.task, noise=CHECK_NOISE, model=SMALL_SPECS["two_layer"], train=CHECK_TRAIN)
    base = without.memory_bytes() - FAMILIES["two_layer"].memory_bytes(without.model, p)
    _require(spec.memory_bytes() == base + estimate, "RunSpec.memory_bytes does not count the family's estimate")


FAMILY_CHECKS: tuple[Callable[[Case], None], ...] = (
    check_registered, check_build_is_seeded, check_memory_estimate, check_forward, check_unit_to_logit_is_linear,
    check_residue_weights, check_training_step, check_capabilities_honoured, check_analyses_apply_or_say_why,
    check_save_load_round_trip,
    check_importer_round_trip,
)


# --- analysis checks ---------------------------------------------------------------------------------


def _json(result: Result, name: str) -> None:
    _require(isinstance(result, Result), f"{name} returned a {type(result).__name__}, not a Result")
    data = result.to_dict()
    _require(isinstance(data, dict), f"{name}'s to_dict is not a dict")
    try:
        json.dumps(data)
    except (TypeError, ValueError) as err:
        raise ConformanceError(f"{name}'s to_dict is not JSON: {err}") from None


def check_analysis_registered(analysis: Analysis) -> None:
    """Registered under its name, with a title, capabilities as needs, a bool for groups."""
    _require(ANALYSES.get(analysis.name) is analysis, f"{analysis.name} is not registered (register_analysis)")
    _require(bool(analysis.title) and isinstance(analysis.groups, bool)
             and all(isinstance(c, Capability) for c in analysis.needs), f"{analysis.name}: title, needs or groups")


def check_skips_are_worded(analysis: Analysis) -> None:
    """On each standard run, a skip is one line of words, and `analyze` refuses it with that line."""
    for case in standard_cases():
        reason = analysis.skip_reason(trained_run(case))
        if reason is None:
            continue
        _require(isinstance(reason, str) and reason.strip() and "\n" not in reason,
                 f"{analysis.name} skips {case} without one line of words: {reason!r}")
        try:
            analyze(trained_run(case), analysis)
        except ValueError as err:
            _require(reason in str(err), f"analyze's refusal does not give the reason: {err}")
        else:
            raise ConformanceError(f"{analysis.name} ran on {case} although it says it does not apply")


def check_groups_honoured(analysis: Analysis) -> None:
    """With `groups=True` it takes a task over a group as it takes Z_p (the same family's run on
    S3 is skipped only for a reason it gives on Z_p too); without, it says it is written for Z_p."""
    z_p, group = standard_cases()[0], standard_cases()[-1]
    reason = analysis.skip_reason(trained_run(group))
    if analysis.groups:
        _require(reason is None or reason == analysis.skip_reason(trained_run(z_p)),
                 f"{analysis.name} declares groups=True but skips a group task: {reason}")
    else:
        _require("written for Z_p" in reason, f"{analysis.name} declares groups=False but does not skip S3 saying so")


def check_results_serialise(analysis: Analysis) -> None:
    """Each result is a Result whose to_dict is JSON and whose summary and tables are text."""
    for case in standard_cases():
        if analysis.skip_reason(trained_run(case)) is None:
            result = _result(analysis, case)
            _json(result, analysis.name)
            _require(isinstance(result.summary(), str), f"{analysis.name}'s summary is not text")
            for table in result.tables():
                _require(isinstance(table.markdown(), str), f"{analysis.name}'s table does not lay out")


def check_figures_draw(analysis: Analysis) -> None:
    """The result's figures are PNG files in the folder given, named from the stem, with captions
    (drawn on the first standard run the analysis applies to: drawing is the slow part)."""
    for case in standard_cases():
        if analysis.skip_reason(trained_run(case)) is not None:
            continue
        with tempfile.TemporaryDirectory() as folder:
            for figure in _result(analysis, case).figures(Path(folder), "fig"):
                path = Path(figure.path)
                _require(path.parent == Path(folder) and path.name.startswith("fig") and path.suffix == ".png",
                         f"{analysis.name} drew {path}, not {folder}/fig*.png")
                _require(path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{analysis.name}'s {path.name} is not a PNG")
                _require(bool(figure.caption), f"{analysis.name}'s {path.name} has no caption")
        return


ANALYSIS_CHECKS: tuple[Callable[[Analysis], None], ...] = (
    check_analysis_registered, check_skips_are_worded, check_groups_honoured, check_results_serialise,
    check_figures_draw,
)


# --- running them ------------------------------------------------------------------------------------


def family_checks(family: ModelFamily, spec: Any, import_format: str | None = None
                  ) -> list[tuple[Case, Callable[[Case], None]]]:
    """(subject, check) for every family check; `import_format`: an importer's format that reads
    the family's state dict as it is (`families.importers.FORMATS`), if any."""
    case = Case(family, spec, task_for(family), import_format=import_format)
    return [(case, check) for check in FAMILY_CHECKS]


def analysis_checks(analysis: Analysis) -> list[tuple[Analysis, Callable[[Analysis], None]]]:
    return [(analysis, check) for check in ANALYSIS_CHECKS]


def _run_all(pairs: Iterable[tuple[Any, Callable]]) -> None:
    for subject, check in pairs:
        try:
            check(subject)
        except AssertionError as err:
            raise ConformanceError(f"{check.__name__} failed for {subject}: {err}") from err


def check_family(family: ModelFamily, spec: Any, import_format: str | None = None) -> None:
    """Run every family check on `family` with models of `spec` (raises ConformanceError)."""
    _run_all(family_checks(family, spec, import_format))


def check_analysis(analysis: Analysis) -> None:
    """Run every analysis check on `analysis` (raises ConformanceError)."""
    _run_all(analysis_checks(analysis))


def parametrize_with_checks(subjects: Iterable[Any]):
    """A `pytest.mark.parametrize` over ("subject", "check") of every check of each subject: an
    `Analysis`, or a family as (family, spec) or (family, spec, import_format). The test body is
    `check(subject)`."""
    import pytest

    params = []
    for subject in subjects:
        pairs = analysis_checks(subject) if isinstance(subject, Analysis) else family_checks(*subject)
        for case, check in pairs:
            label = case.name if isinstance(case, Analysis) else case.family.name
            params.append(pytest.param(case, check, id=f"{label}-{check.__name__}"))
    return pytest.mark.parametrize("subject, check", params)


def built_in_subjects() -> list[Any]:
    """Every registered family with a small spec (SMALL_SPECS) and every registered analysis."""
    return [*((FAMILIES[name], spec) for name, spec in SMALL_SPECS.items() if name in FAMILIES), *ANALYSES.values()]


# --- scoring a localisation against a planted truth -------------------------------------------


ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
#: a fresh process with these variables runs torch's own kernels without SIMD, oneDNN's at SSE4.1,
#: OpenBLAS's at Nehalem's and MKL's in its "compatible" code path (`MKL_CBWR`: on an AMD CPU, where
#: `MKL_ENABLE_INSTRUCTIONS` is ignored, the one setting that changes MKL's summation order), on one
#: thread. What a CPU lacks, it cannot be asked for: there the variables change less or nothing.
NARROW_KERNELS = {**ONE_THREAD, "ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
                  "MKL_CBWR": "COMPATIBLE", "ONEDNN_MAX_CPU_ISA": "SSE41", "OPENBLAS_CORETYPE": "Nehalem"}
#: the same at AVX2: an AVX-512 machine computing as an AVX2 one does. On an AMD CPU MKL and
#: OpenBLAS run their AVX2 kernels anyway, so only torch's own kernels change there.
AVX2_KERNELS = {**ONE_THREAD, "ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "MKL_CBWR": "AVX2",
                "ONEDNN_MAX_CPU_ISA": "AVX2", "OPENBLAS_CORETYPE": "Haswell"}
#: other matrix kernels at full speed: MKL's "compatible" path and OpenBLAS's Nehalem kernels,
#: torch's own kernels as they are
GEMM_KERNELS = {**ONE_THREAD, "MKL_CBWR": "COMPATIBLE", "OPENBLAS_CORETYPE": "Nehalem"}


def result_differences(a: Any, b: Any, where: str = "", rel_tol: float = 1e-7) -> list[str]:
    """Where two results (JSON values: `Result.to_dict()` through json) differ: every value
    exactly, but floats to 1e-7 relative — float64 summed in another order differs near 1e-15,
    while an accuracy or an AUROC moved by one example moves by more than 1e-7 on any data set of
    fewer than 1e7 examples (pairs, for an AUROC). Measurements computed in float32 differ from
    1e-7 to about 1e-5 in another order (more near zero, where sums cancel): `rel_tol=1e-5` lists
    only what goes beyond that, an accuracy moved by one example in fewer than 1e5 included."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b), key=str)
                for d in result_differences(a.get(k), b.get(k), f"{where}/{k}", rel_tol)]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in result_differences(x, y, f"{where}[{i}]", rel_tol)]
    if isinstance(a, float) and isinstance(b, float) and math.isclose(a, b, rel_tol=rel_tol, abs_tol=1e-12):
        return []
    return [] if a == b or (a != a and b != b) else [f"{where}: {a!r} against {b!r}"]


def precision_recall(predicted: list[str], truth: list[str], label: str) -> tuple[float, float]:
    """Precision and recall of `label` in `predicted` against `truth`, position by position (0.0
    where nothing is predicted `label`, or nothing truly is)."""
    if len(predicted) != len(truth):
        raise ValueError(f"{len(predicted)} labels predicted for {len(truth)} true ones")
    pred, true = torch.tensor([x == label for x in predicted]), torch.tensor([x == label for x in truth])
    hits = int((pred & true).sum())
    return hits / max(int(pred.sum()), 1), hits / max(int(true.sum()), 1)


def recovery(rows: list[UnitRow], truths: dict[str, list[str]]) -> dict[str, dict[str, tuple[float, float]]]:
    """Per kind of `truths` (a localisation row kind, or `neuron part: PART`; the truth one label
    per row of that kind, in the rows' order), the precision and recall of each label the truth
    holds, from a localisation's rows (`interp.analysis.localize`; a planted model's `truths()`,
    `interp.planted`)."""
    out = {}
    for key, truth in truths.items():
        kind, _, part = key.partition(": ")
        got = [r.label for r in rows if r.kind == kind and (not part or r.part == part)]
        out[key] = {name: precision_recall(got, truth, name) for name in dict.fromkeys(truth)}
    return out


__all__ = ["ANALYSIS_CHECKS", "AVX2_KERNELS", "CAPABILITY_CHECKS", "Case", "ConformanceError", "FAMILY_CHECKS",
           "GEMM_KERNELS", "NARROW_KERNELS", "ONE_THREAD", "SMALL_SPECS", "analysis_checks", "built_in_subjects", "check_analysis", "check_family", "family_checks",
           "parametrize_with_checks", "precision_recall", "recovery", "result_differences", "standard_cases", "task_for", "trained_run"]
