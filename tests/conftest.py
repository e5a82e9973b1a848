import pytest

from interp.core.specs import NoiseSpec, RunSpec, TaskSpec, TrainSpec, TransformerSpec, TwoLayerSpec


def small_two_layer(**train) -> RunSpec:
    """p=17 two-layer ReLU net with 50% wrong labels: trains in well under a second."""
    return RunSpec(
        task=TaskSpec(op="add", p=17, train_fraction=0.6),
        noise=NoiseSpec(kind="wrong", rate=0.5, seed=3),
        model=TwoLayerSpec(width=65, act="relu"),
        train=TrainSpec(**{"steps": 40, "lr": 3e-3, "weight_decay": 0.1, "eval_every": 10,
                           "checkpoint_every": 10, **train}),
    )


def small_transformer(**train) -> RunSpec:
    return RunSpec(
        task=TaskSpec(op="add", p=17, train_fraction=0.5),
        noise=NoiseSpec(kind="wrong", rate=0.2, seed=1),
        model=TransformerSpec(d_model=32, n_heads=2, d_head=16, d_mlp=64),
        train=TrainSpec(**{"steps": 12, "lr": 1e-3, "weight_decay": 1.0, "eval_every": 4,
                           "checkpoint_every": 4, **train}),
    )


@pytest.fixture
def two_layer_spec() -> RunSpec:
    return small_two_layer()


@pytest.fixture
def transformer_spec() -> RunSpec:
    return small_transformer()


@pytest.fixture(scope="session")
def planted_union():
    """(model, dataset, built): the analytic union of a rule transformer (frequencies 2, 5;
    heads L0H0, L0H1 copy a and b) and a lookup transformer storing 10% wrong labels (heads
    L0H2, L0H3; its neurons `unclustered`), p = 23: every head and neuron on one side by
    construction (interp.planted.planted_transformer)."""
    import interp
    from interp.planted import planted_transformer

    ds = interp.make_dataset(TaskSpec(p=23, train_fraction=0.5), NoiseSpec(kind="wrong", rate=0.1, seed=7))
    built = planted_transformer(ds, freqs=(2, 5))
    return built.model, ds, built
