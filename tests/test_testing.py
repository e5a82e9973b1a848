"""The conformance suites catch what they name: each check fails on a family or an analysis that
breaks its contract in one way (the third party's, tests/third_party.py, broken on purpose), and
says which contract."""

import contextlib
from dataclasses import dataclass

import pytest
import torch
from third_party import NEURON_COUNT, EmbedMLPFamily, EmbedMLPSpec, NeuronCount

from interp.analysis.registry import ANALYSES, Analysis, add_analysis
from interp.families import Capability, register, unregister
from interp.testing import (Case, ConformanceError, check_analysis, check_capabilities_honoured, check_figures_draw,
                            check_groups_honoured, check_registered, check_results_serialise, check_skips_are_worded,
                            check_unit_to_logit_is_linear, check_residue_weights, check_build_is_seeded,
                            check_memory_estimate)

SPEC = EmbedMLPSpec(hidden=12)


@contextlib.contextmanager
def registered(family):
    register(family)
    try:
        yield Case(family, SPEC)
    finally:
        unregister(family.name)


class ScaledReadout(EmbedMLPFamily):
    def unit_to_logit(self, model):
        return 2 * model.W_U.detach()


class ClaimsHeads(EmbedMLPFamily):
    provides = frozenset({Capability.NEURON_MAPS, Capability.HEADS})


class HidesNeuronMaps(EmbedMLPFamily):
    provides = frozenset()  # but neuron_maps still answers instead of refusing


class DishonestMaps(EmbedMLPFamily):
    def neuron_maps(self, model):
        maps = super().neuron_maps(model)
        return {**maps, "v": maps["u"]}  # b read through a's map


class EditsInPlace(EmbedMLPFamily):
    def with_residue_weights(self, model, embedding=None, unembedding=None):
        with torch.no_grad():
            if embedding is not None:
                model.W_x.copy_(embedding)
            if unembedding is not None:
                model.W_U.copy_(unembedding)
        return model


class WrongSpec(EmbedMLPFamily):
    def spec(self, model):
        return EmbedMLPSpec()


class Undersized(EmbedMLPFamily):
    def memory_bytes(self, spec, p):
        return 4 * p * spec.hidden  # one float per unembedding weight: no gradients, no activations


class Unseeded(EmbedMLPFamily):
    def build(self, spec, p):
        model = super().build(spec, p)
        with torch.no_grad():
            model.W.add_(torch.randn(model.W.shape))
        return model


@pytest.mark.parametrize("family, check, message", [
    (ScaledReadout(), check_unit_to_logit_is_linear, "does not act on the logits through unit_to_logit"),
    (ClaimsHeads(), check_capabilities_honoured, "has no attention heads"),
    (HidesNeuronMaps(), check_capabilities_honoured, "lacks neuron_maps but its call did not refuse"),
    (DishonestMaps(), check_capabilities_honoured, "rebuilt from its neuron maps the model computes otherwise"),
    (EditsInPlace(), check_residue_weights, "with_residue_weights changed the model it copied"),
    (WrongSpec(), check_registered, r"spec\(build\(spec\)\)"),
    (Unseeded(), check_build_is_seeded, "two builds of one spec differ"),
    (Undersized(), check_memory_estimate, "under the .* bytes of the parameters"),
], ids=lambda x: type(x).__name__ if isinstance(x, EmbedMLPFamily) else None)
def test_a_broken_family_fails_the_check_of_its_contract(family, check, message):
    with registered(family) as case, pytest.raises((AssertionError, TypeError), match=message):
        check(case)


@dataclass(repr=False)
class TensorResult(NeuronCount):
    def to_dict(self):
        return {"alive": torch.tensor(self.alive)}


@dataclass(repr=False)
class StrayFigure(NeuronCount):
    def figures(self, out_dir, stem):
        from interp.core.document import Figure

        path = out_dir.parent / f"{stem}.png"
        path.write_bytes(b"\x89PNG\r\n\x1a\n")
        return [Figure(path, "a figure outside the folder given")]


def as_result(kind):
    return lambda run: kind(**NEURON_COUNT.compute(run).to_dict())


@pytest.mark.parametrize("analysis, check, message", [
    (Analysis("tensor_dict", "Tensors", as_result(TensorResult), groups=True), check_results_serialise, "not JSON"),
    (Analysis("stray", "Stray", as_result(StrayFigure), groups=True), check_figures_draw, "not .*fig"),
    (Analysis("two_lines", "Two lines", NEURON_COUNT.compute, extra_reason=lambda run: "one\ntwo"),
     check_skips_are_worded, "without one line of words"),
    (Analysis("says_groups", "Says groups", NEURON_COUNT.compute, extra_reason=lambda run: run.spec.task.group and
              "it is written for Z_p only", groups=True), check_groups_honoured, "declares groups=True but skips"),
], ids=lambda x: x.name if isinstance(x, Analysis) else None)
def test_a_broken_analysis_fails_the_check_of_its_contract(analysis, check, message):
    add_analysis(analysis)
    try:
        with pytest.raises(AssertionError, match=message):
            check(analysis)
    finally:
        ANALYSES.pop(analysis.name)


def test_an_analysis_registered_with_the_default_groups_passes_by_saying_why_it_skips_groups():
    """`register_analysis`'s default is groups=False: an analysis that says nothing of groups is
    skipped on them with the reason said, which the suite accepts (True would claim, for every
    analysis written against Z_p's frequencies, that it reads irreps)."""
    from interp.analysis.registry import register_analysis
    from interp.testing import standard_cases, trained_run

    default = register_analysis("z_p_count", "Z_p count", NEURON_COUNT.compute)
    try:
        assert default.groups is False
        assert "written for Z_p tasks" in default.skip_reason(trained_run(standard_cases()[-1]))
        check_analysis(default)
    finally:
        ANALYSES.pop(default.name)


def test_check_family_names_the_check_broken():
    with registered(ScaledReadout()) as case, pytest.raises(ConformanceError, match="check_unit_to_logit_is_linear"):
        from interp.testing import check_family

        check_family(case.family, case.spec)


def test_a_feature_family_that_answers_for_an_embedding_by_residue_fails_its_check():
    """A family over feature vectors has no (a, b) pairs: its embedding must refuse, saying so
    (checked on digits, the feature task of the checks)."""
    from dataclasses import dataclass as frozen_dataclass

    from interp.families.mlp import MLPFamily, MLPNet, MLPSpec
    from interp.testing import task_for

    @frozen_dataclass(frozen=True)
    class LeakySpec(MLPSpec):
        arch = "mlp_leaky"

    class EmbedsFeatures(MLPFamily):
        name, spec_type = "mlp_leaky", LeakySpec

        def owns(self, model):
            return isinstance(model, MLPNet) and type(model.spec) is LeakySpec

        def embedding(self, model):
            return model.blocks[0].linear.weight.detach().T  # rows by feature, not by residue

    family = EmbedsFeatures()
    assert task_for(family).features
    register(family)
    try:
        with pytest.raises(AssertionError, match="reads no .a, b. pairs but its embedding did not refuse"):
            check_residue_weights(Case(family, LeakySpec(d_in=64, widths=(8,)), task_for(family)))
    finally:
        unregister(family.name)
