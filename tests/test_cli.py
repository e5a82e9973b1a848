import json

import pytest

from interp.cli import main
from interp.training.presets import PRESETS


def test_presets_lists_every_preset(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    for name in PRESETS:
        assert name in out


def test_start_up_leaves_heavy_imports_for_later(fresh_interpreter):
    """The CLI and two-layer work start without Hugging Face's model zoo (pulled in by the
    TransformerBridge module) or scikit-learn: seconds of imports on every command. Checked in a
    fresh interpreter right after `import interp.cli, interp.reporting.report` (conftest.py)."""
    assert fresh_interpreter["heavy_after_cli_import"] == []


def test_train_with_overrides_prints_subsets(tmp_path, capsys):
    out_dir = tmp_path / "run"
    code = main(["train", "--preset", "liu-lu-80", "--out", str(out_dir), "--no-progress",
                 "--set", "p=17", "--set", "width=33", "--set", "steps=30", "--set", "eval_every=10"])
    assert code == 0
    out = capsys.readouterr().out
    for name in ["clean", "noisy_observed", "noisy_true", "test"]:
        assert name in out
    config = json.loads((out_dir / "config.json").read_text())
    assert config["spec"]["task"]["p"] == 17 and config["step"] == 30


def test_train_with_report_reports_on_the_trained_run(tmp_path, monkeypatch):
    """The --report wiring: the run just trained goes to the report writer with OUT/report (the
    report itself is tested in test_report.py, not run again here)."""
    import interp.cli as cli

    calls = []
    monkeypatch.setattr(cli, "_report", lambda run, out, progress, replace=False: calls.append((run, out)))
    out_dir = tmp_path / "run"
    assert main(["train", "--preset", "liu-lu-80", "--out", str(out_dir), "--no-progress", "--report",
                 "--set", "p=17", "--set", "width=33", "--set", "steps=30"]) == 0
    ((run, out),) = calls
    assert out == out_dir / "report" and run.path == out_dir and run.step == 30


@pytest.mark.parametrize("args,message", [
    (["--preset", "nope"], "unknown preset 'nope'"),
    (["--preset", "liu-lu-80", "--set", "bogus=1"], "unknown key 'bogus'; valid keys:"),
    (["--preset", "liu-lu-80", "--set", "rate=1.5"], "noise.rate must lie in"),
    (["--preset", "liu-lu-80", "--set", "op=div", "--set", "p=57"], "not prime"),
    (["--preset", "liu-lu-80", "--set", "train_fraction=1"], "train_fraction must lie in"),
])
def test_bad_input_is_refused_with_a_message(tmp_path, capsys, args, message):
    assert main(["train", "--out", str(tmp_path / "x"), *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_analyze_writes_json_and_figures(tmp_path, capsys):
    out_dir = tmp_path / "run"
    assert main(["train", "--preset", "liu-lu-80", "--out", str(out_dir), "--no-progress",
                 "--set", "p=17", "--set", "width=33", "--set", "steps=20", "--set", "checkpoint_every=10"]) == 0
    assert main(["analyze", str(out_dir), "--analysis", "fourier", "--analysis", "filtration"]) == 0
    for name in ["fourier.json", "fourier.png", "filtration.json", "filtration.png", "filtration.md"]:
        assert (out_dir / "analysis" / name).stat().st_size > 0
    data = json.loads((out_dir / "analysis" / "filtration.json").read_text())
    assert data["result"]["rows"]["raw"]["test_acc"] is not None
    assert "auroc" in data["result"]["noise_detection"]
    spectra = json.loads((out_dir / "analysis" / "fourier.json").read_text())["result"]
    assert len(spectra["freq"]) == 33
    assert main(["analyze", str(out_dir), "--analysis", "fourier", "--step", "10"]) == 0
    assert (out_dir / "analysis" / "step_10" / "fourier.json").exists()


def test_analyze_a_transformer_run(tmp_path):
    out_dir = tmp_path / "t"
    assert main(["train", "--preset", "nanda-noisy", "--out", str(out_dir), "--no-progress",
                 "--set", "p=17", "--set", "d_model=32", "--set", "d_mlp=64", "--set", "steps=5"]) == 0
    assert main(["analyze", str(out_dir), "--analysis", "fourier", "--analysis", "filtration"]) == 0
    rows = json.loads((out_dir / "analysis" / "filtration.json").read_text())["result"]["rows"]
    assert {"raw", "restricted", "excluded"} <= set(rows)


def test_analyze_missing_run_dir(tmp_path, capsys):
    assert main(["analyze", str(tmp_path / "none"), "--analysis", "fourier"]) == 2
    assert "no run directory or released model" in capsys.readouterr().err


def test_analyze_issue_four_analyses(tmp_path):
    out_dir = tmp_path / "run"
    assert main(["train", "--preset", "liu-lu-80", "--out", str(out_dir), "--no-progress",
                 "--set", "p=17", "--set", "width=33", "--set", "steps=30"]) == 0
    assert main(["analyze", str(out_dir), "--analysis", "ablation", "--analysis", "partition",
                 "--analysis", "localize", "--analysis", "probes"]) == 0
    for name in ["ablation", "partition", "localize", "probes"]:
        assert json.loads((out_dir / "analysis" / f"{name}.json").read_text())["analysis"] == name
        assert (out_dir / "analysis" / f"{name}.png").stat().st_size > 0


def test_dynamics_reads_history_and_trajectory(tmp_path):
    from interp import load_run
    from interp.analysis.dynamics import fit_speed

    out_dir = tmp_path / "run"
    assert main(["train", "--preset", "liu-lu-80", "--out", str(out_dir), "--no-progress", "--set", "p=17",
                 "--set", "width=65", "--set", "steps=200", "--set", "eval_every=10", "--set", "checkpoint_every=20",
                 "--set", "lr=0.003"]) == 0
    speed = fit_speed(load_run(out_dir))
    assert speed.checkpoint_steps == list(range(20, 201, 20))
    assert len(speed.first_fit_noisy) == len(load_run(out_dir).dataset.noisy_mask.nonzero())
    assert speed.half_fitted["noisy"] is not None and speed.clean_acc[-1] == 1.0
    assert main(["analyze", str(out_dir), "--analysis", "dynamics"]) == 0
    # an imported model's run: one evaluation, no checkpoints — no course of training to read,
    # so no "half fitted at step 0" (the report says why instead)
    from interp import Run
    from interp.analysis.registry import ANALYSES

    run = load_run(out_dir)
    assert ANALYSES["dynamics"].skip_reason(run) is None
    imported = Run(run.spec, run.model, run.history[-1:], run.step, None, run.dataset)
    assert "holds 1 evaluation and no checkpoint trajectory" in ANALYSES["dynamics"].skip_reason(imported)
    only_checkpoints = Run(run.spec, run.model, run.history[-1:], run.step, run.path, run.dataset)
    assert ANALYSES["dynamics"].skip_reason(only_checkpoints) is None  # the trajectory still dates each fit
    summary = ANALYSES["dynamics"](only_checkpoints).summary()
    assert "Half of the subset" not in summary and "holds one evaluation" in summary


def test_cli_errors_are_one_line_and_debug_shows_the_traceback(tmp_path, capsys):
    assert main(["sweep", str(tmp_path / "missing.toml"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "missing.toml does not exist" in err
    with pytest.raises(FileNotFoundError):
        main(["--debug", "sweep", str(tmp_path / "missing.toml"), "--out", str(tmp_path / "o")])


def test_missing_step_lists_the_steps(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--preset", "liu-lu-80", "--out", str(out), "--no-progress", "--set", "p=11",
                 "--set", "width=17", "--set", "steps=20"]) == 0
    capsys.readouterr()
    assert main(["analyze", str(out), "--analysis", "fourier", "--step", "7"]) == 2
    assert "no checkpoint at step 7; its steps: 4, 8, 12, 16, 20" in capsys.readouterr().err
    # steps=20 alone: 20 evaluations and 5 checkpoints, not liu-lu-80's every 200 and 1000
    assert len(json.loads((out / "history.json").read_text())) == 21


def test_presets_name_prints_the_full_spec(capsys):
    assert main(["presets", "nanda-noisy-59"]) == 0
    out = capsys.readouterr().out
    spec = json.loads(out[out.index("{"):])
    assert spec["task"]["p"] == 59 and spec["model"]["arch"] == "transformer"


def test_analyze_takes_a_released_name(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["analyze", "liu-lu-80", "--analysis", "fourier"]) == 0
    assert (tmp_path / "reports" / "liu-lu-80" / "analysis" / "fourier.json").exists()


def test_dynamics_median_counts_the_never_fitted():
    """nanda-inversion's case: 271 of 278 noisy examples never fitted must not read as 'median
    first fit step 750' (the median of the 7 that were)."""
    from interp.analysis.dynamics import FitSpeed

    speed = FitSpeed(steps=[0, 750], clean_acc=[0.1, 1.0], noisy_acc=[0.0, 0.03], half_fitted={"clean": 750, "noisy": None},
                     checkpoint_steps=[250, 500, 750], first_fit_clean=[250] * 5 + [500] * 4 + [-1],
                     first_fit_noisy=[750] * 7 + [-1] * 271)
    assert speed.median_first_fit() == {"clean": 250.0, "noisy": None}
    text = speed.summary()
    assert "noisy never" in text and "noisy 271 of 278" in text and "clean 1 of 10" in text
    # a subset never half fitted reads "never", not "at never"; a median at the first checkpoint
    # may be any step up to it
    assert "noisy (observed labels) never." in text and "clean step 250 (the first checkpoint: or earlier)" in text
