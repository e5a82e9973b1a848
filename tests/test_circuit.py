"""Circuit views on the analytic lookup transformer, whose attention and logit paths are known
by construction (interp.planted.lookup_transformer)."""

import torch

import interp
from interp.training.rundir import Run
from interp.analysis.circuit import circuit_views
from interp.families.base import family_of
from interp.planted import lookup_transformer
from interp.core.specs import NoiseSpec, RunSpec, TaskSpec


def test_circuit_views_read_the_lookup_transformer_as_built():
    spec = RunSpec(task=TaskSpec(p=13, train_fraction=0.6), noise=NoiseSpec(kind="wrong", rate=0.3, seed=2))
    ds = interp.make_dataset(spec.task, spec.noise)
    model, _ = lookup_transformer(ds, d_head=8)
    run = Run(RunSpec(task=spec.task, noise=spec.noise, model=family_of(model).spec(model)), model, [], 0, None)
    views = circuit_views(run)
    # head A reads position 0 (token a), head B position 1 (token b), each alone
    attention = torch.tensor(views.attention["blocks.0.attn.hook_pattern"], dtype=torch.float64)
    torch.testing.assert_close(attention, torch.tensor([[1.0, 0, 0], [0, 1.0, 0]], dtype=torch.float64), atol=1e-6,
                               rtol=0)
    # the heads write only to the copy slots, which the unembedding never reads: no direct push
    assert all(abs(v) < 1e-9 for head in views.head_attribution.values() for v in head.values() if v is not None)
    # the lookup neurons push the observed wrong label on the noisy pairs and nothing on test pairs
    total = {s: sum(c[s] for c in views.cluster_attribution.values()) for s in ("noisy_observed", "test")}
    assert total["noisy_observed"] > 0.9 and abs(total["test"]) < 1e-9
    assert views.progress == {}  # no trajectory
