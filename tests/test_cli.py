import json

import pytest

from interp.cli import main
from interp.presets import PRESETS


def test_presets_lists_every_preset(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    for name in PRESETS:
        assert name in out


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
