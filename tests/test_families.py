"""The model-family interface: a third family, registered from outside the library
(tests/third_party.py, whose conformance test_open_toolkit runs), is chosen by `model.arch`,
validated with the public validators and sized by its own memory estimate; pair inputs cannot
silently reach a transformer."""

import pytest
import torch
from conftest import small_transformer
from third_party import FAMILY, EmbedMLPSpec, registered
from torch import nn

import interp
from interp.core.specs import RunSpec, SpecError, TransformerSpec
from interp.families.base import family_of


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
