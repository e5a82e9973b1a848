"""The model-family interface: a third family, registered from outside the library
(tests/third_party.py, whose conformance test_open_toolkit runs), is chosen by `model.arch`,
validated with the public validators and sized by its own memory estimate; pair inputs cannot
silently reach a transformer."""

import pytest
import torch
from conftest import small_transformer
from third_party import FAMILY, EmbedMLPFamily, EmbedMLPSpec, registered
from torch import nn

import interp
from interp.analysis.filtration import compare_extractions
from interp.analysis.spectra import fourier_analysis
from interp.core.specs import NoiseSpec, RunSpec, SpecError, TaskSpec, TransformerSpec, TwoLayerSpec
from interp.families.base import FAMILIES, family_of, register
from interp.families.two_layer import TwoLayerNet


def test_a_registered_family_is_chosen_by_arch_validated_and_sized_by_itself(monkeypatch):
    base = RunSpec().with_overrides(["p=11"])
    with registered():
        spec = base.with_overrides(["model.arch=embed_mlp_test", "model.hidden=12"])
        assert spec.model == EmbedMLPSpec(hidden=12) and spec.task == base.task and spec.train == base.train
        # its memory is its family's estimate, beside the dataset's and the logits'
        dataset_and_logits = 11**2 * 36 + 11**3 * 12
        assert spec.memory_bytes() == dataset_and_logits + FAMILY.memory_bytes(spec.model, 11) > dataset_and_logits
        monkeypatch.setenv("INTERP_MAX_BYTES", str(spec.memory_bytes() - 1))
        with pytest.raises(SpecError, match="model embed_mlp_test"):
            base.with_overrides(["model.arch=embed_mlp_test", "model.hidden=12"])
        monkeypatch.delenv("INTERP_MAX_BYTES")
        with pytest.raises(SpecError, match="model.hidden must be an integer, got 1.5"):  # the public validators
            EmbedMLPSpec(hidden=1.5)
    with pytest.raises(SpecError, match="model.arch='embed_mlp_test' is not one of two_layer, transformer"):
        base.with_overrides(["model.arch=embed_mlp_test"])  # taken back: unknown again
    # a built-in family by name, its own keys set in the same command
    assert base.with_overrides(["arch=transformer", "d_model=64"]).model == TransformerSpec(d_model=64)


def test_unknown_model_names_the_registered_families():
    with pytest.raises(TypeError, match="no registered model family"):
        family_of(nn.Linear(2, 2))


def _claims(monkeypatch) -> list[nn.Module]:
    """Every model a registered family is asked about and claims, in order: one entry each time
    the registry is searched for a model's family."""
    claimed = []
    for family in FAMILIES.values():
        def owns(model, ask=family.owns):
            mine = ask(model)
            if mine:
                claimed.append(model)
            return mine
        monkeypatch.setattr(family, "owns", owns)
    return claimed


@pytest.mark.parametrize("analysis", [lambda model, ds: fourier_analysis(model, ds.task, ds),
                                      lambda model, ds: compare_extractions(model, ds)], ids=["fourier", "filtration"])
def test_one_analysis_call_searches_the_registry_once_per_model(monkeypatch, analysis):
    # every helper the analysis calls asks for the model's family; the filtration also builds
    # filtered copies, each a model of its own, searched for once
    ds = interp.make_dataset(TaskSpec(p=11, train_fraction=0.6), NoiseSpec(kind="wrong", rate=0.2, seed=1))
    claimed = _claims(monkeypatch)
    model = TwoLayerNet(TwoLayerSpec(width=24), ds.p)  # built directly: its family never asked for yet
    analysis(model, ds)
    assert sum(m is model for m in claimed) == 1
    assert len({id(m) for m in claimed}) == len(claimed)  # `claimed` keeps each alive, so ids are distinct


def test_a_family_replaced_or_taken_back_no_longer_owns_its_models():
    with registered():
        model = FAMILY.build(EmbedMLPSpec(hidden=4), 5)
        assert family_of(model) is FAMILY
        replacement = register(EmbedMLPFamily())  # the same name: it takes FAMILY's place
        assert family_of(model) is replacement
    with pytest.raises(TypeError, match="no registered model family"):
        family_of(model)


def test_transformer_refuses_bare_pairs_and_takes_them_through_the_pair_api(tmp_path):
    run = interp.train(small_transformer(steps=2), progress=False)
    pairs = run.dataset.inputs[:5]
    for call in (lambda: run.model(pairs), lambda: run.model.run_with_cache(pairs),
                 lambda: run.model.run_with_hooks(pairs, fwd_hooks=[])):
        with pytest.raises(ValueError, match="interp.tokens"):
            call()
    tokens = interp.tokens(run.model, pairs)
    assert tokens.shape == (5, 3) and bool((tokens[:, 2] == run.spec.task.p).all())
    logits, cache = run.run_with_cache(pairs)
    assert logits.shape == (5, 3, run.spec.task.p)  # TransformerLens's own output, every position
    torch.testing.assert_close(logits[:, -1], interp.logits(run.model, pairs))
    assert cache["blocks.0.mlp.hook_post"].shape[:2] == (5, 3)


def test_analyses_run_with_the_model_on_an_explicit_device():
    """The family moves the pairs to the model's device and the results back to the pairs' (and
    labels'): run here with `device="cpu"` named explicitly; on a GPU machine the same calls
    take a model trained with `--device cuda`."""
    from conftest import small_two_layer

    run = interp.train(small_two_layer(steps=5), progress=False, device=torch.device("cpu"))
    result = interp.analyze(run, "filtration")
    assert result.rows["raw"]["test_acc"] == pytest.approx(run.final_metrics["test_acc"])
    logits, cache = family_of(run.model).run_with_cache(run.model, run.dataset.inputs, names_filter="hook_post")
    assert logits.device == run.dataset.inputs.device == cache["hook_post"].device
