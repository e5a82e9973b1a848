"""A family and an analysis from an installed package, found through its entry points: nothing
in interp is edited, and `import interp` lists them, `--set model.arch=NAME` trains the family,
`interp analyze --analysis NAME` runs the analysis and the report has a section for it; an entry
point that fails to load is skipped with a warning naming it."""

import json
import os
import shutil
from pathlib import Path

from fresh import run_fresh

HERE = Path(__file__).resolve().parent

ENTRY_POINTS = """\
[interp.families]
embed_mlp_test = third_party:EmbedMLPFamily

[interp.analyses]
neuron_count = third_party:NEURON_COUNT
broken = no_such_module:NOTHING
"""

USE = """
import json
import interp
from interp.analysis.registry import in_report_order
from interp.cli import main

assert interp.families.FAMILIES["embed_mlp_test"].spec_type.__module__ == "third_party"
spec = interp.RunSpec().with_overrides(["p=11", "train_fraction=0.6", "noise.rate=0.3", "model.arch=embed_mlp_test",
                                        "model.hidden=16", "steps=1", "eval_every=1", "checkpoint_every=1"])
interp.train(spec, "run", progress=False)
code = main(["analyze", "run", "--analysis", "neuron_count", "--out", "out"])
print(json.dumps({"analyses": sorted(interp.ANALYSES), "families": sorted(interp.families.FAMILIES), "code": code,
                  "arch": interp.load_run("run").spec.model.arch, "report": in_report_order()}))
"""


def test_an_installed_package_adds_a_family_and_an_analysis(tmp_path):
    # the package as pip leaves it in site-packages: its module and a .dist-info naming the entry points
    site = tmp_path / "site"
    (site / "interp_third_party-0.1.dist-info").mkdir(parents=True)
    shutil.copy(HERE / "third_party.py", site / "third_party.py")
    (site / "interp_third_party-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: interp-third-party\nVersion: 0.1\n")
    (site / "interp_third_party-0.1.dist-info" / "entry_points.txt").write_text(ENTRY_POINTS)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent), str(site)]), "PYTHONWARNINGS": "always"}
    outcome = run_fresh({"use": (USE, tmp_path)}, env=env)["use"].check()
    found = json.loads(outcome.stdout.strip().splitlines()[-1])
    assert "neuron_count" in found["analyses"] and "embed_mlp_test" in found["families"] and found["code"] == 0
    assert found["arch"] == "embed_mlp_test" and "broken" not in found["analyses"]
    assert "neuron_count" in found["report"]  # the report's sections, in order (a report is written: test_open_toolkit)
    written = json.loads((tmp_path / "out" / "neuron_count.json").read_text())["result"]
    assert written["total"] == 16 and 0 < written["alive"] <= 16
    assert "skipped the entry point broken = no_such_module:NOTHING of interp.analyses" in outcome.stderr
