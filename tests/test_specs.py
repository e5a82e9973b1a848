import json

import pytest

from interp import PRESETS, RunSpec, SpecError, TaskSpec, get_preset
from interp.core.specs import NoiseSpec, TrainSpec, TwoLayerSpec


@pytest.mark.parametrize("p", [4, 15, 91])
def test_division_refuses_non_prime_p(p):
    with pytest.raises(SpecError, match="not prime"):
        TaskSpec(op="div", p=p)


def test_non_prime_p_is_fine_without_division():
    assert TaskSpec(op="add", p=15).p == 15


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5])
def test_noise_rate_outside_unit_interval_refused(rate):
    with pytest.raises(SpecError, match=r"noise.rate must lie in \[0, 1\)"):
        NoiseSpec(rate=rate)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.2, 1.3])
def test_train_fraction_outside_open_interval_refused(fraction):
    with pytest.raises(SpecError, match=r"train_fraction must lie in \(0, 1\)"):
        TaskSpec(train_fraction=fraction)


def test_bad_choices_name_the_valid_ones():
    with pytest.raises(SpecError, match="relu, quadratic, gelu, abs"):
        TwoLayerSpec(act="tanh")
    with pytest.raises(SpecError, match="adamw, adam, sgd"):
        TrainSpec(optimizer="lion")


def test_symmetric_noise_needs_commutative_op():
    with pytest.raises(SpecError, match="commutative"):
        RunSpec(task=TaskSpec(op="sub", p=17), noise=NoiseSpec(kind="symmetric", rate=0.3))


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_round_trips_through_json(name):
    spec = PRESETS[name].spec
    assert RunSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def test_overrides_by_bare_and_qualified_key():
    spec = get_preset("liu-lu-80").spec.with_overrides(
        ["p=23", "steps=200", "noise.rate=0.5", "tied=true", "noise.seed=7"]
    )
    assert (spec.task.p, spec.train.steps, spec.noise.rate, spec.model.tied, spec.noise.seed) == (
        23, 200, 0.5, True, 7,
    )


def test_unknown_key_lists_valid_keys():
    with pytest.raises(SpecError, match="unknown key 'widht'.*model.width"):
        get_preset("liu-lu-80").spec.with_overrides(["widht=10"])


def test_key_of_other_model_family_refused():
    with pytest.raises(SpecError, match="unknown key 'd_model'"):
        get_preset("liu-lu-80").spec.with_overrides(["d_model=64"])


def test_ambiguous_key_asks_for_section():
    with pytest.raises(SpecError, match="ambiguous key 'seed'.*noise.seed"):
        get_preset("liu-lu-80").spec.with_overrides(["seed=1"])


@pytest.mark.parametrize("item", ["p=abc", "tied=maybe", "lr=fast"])
def test_bad_values_refused(item):
    with pytest.raises(SpecError, match="not a valid"):
        get_preset("liu-lu-80").spec.with_overrides([item])


def test_override_values_are_validated():
    with pytest.raises(SpecError, match="noise.rate"):
        get_preset("liu-lu-80").spec.with_overrides(["rate=1.2"])
    with pytest.raises(SpecError, match="not prime"):
        get_preset("liu-lu-80").spec.with_overrides(["op=div", "p=21"])


def test_unknown_preset():
    with pytest.raises(KeyError, match="unknown preset 'nope'.*liu-lu-80"):
        get_preset("nope")


def test_a_low_memory_limit_leaves_import_working_and_the_presets_refused_in_one_line(monkeypatch):
    """INTERP_MAX_BYTES below a preset's needs: `import interp` still works in a fresh process
    (presets are built when first read), and reading them raises a one-line SpecError."""
    import os
    import subprocess
    import sys

    from interp.training import presets

    env = {**os.environ, "INTERP_MAX_BYTES": "1000"}
    done = subprocess.run([sys.executable, "-c", "import interp; print(interp.RunSpec.__name__)"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "RunSpec", done.stderr[-500:]
    monkeypatch.setenv("INTERP_MAX_BYTES", "1000")
    with pytest.raises(SpecError, match=r"^the built-in presets: this spec needs about .* INTERP_MAX_BYTES"):
        list(presets._Presets())
