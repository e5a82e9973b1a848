import json
import shutil
from html.parser import HTMLParser

import pytest
from conftest import small_two_layer

import interp
from interp.cli import main
from interp.core.metrics import phase
from interp.reporting.report import write_report

VOID = {"meta", "img", "br", "hr", "link", "input"}


class Structure(HTMLParser):
    """Collects what a browser would load and checks that every element is closed in order."""

    def __init__(self):
        super().__init__()
        self.stack, self.errors, self.images, self.external, self.headings = [], [], [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        for key in ("src", "href"):
            value = attrs.get(key) or ""
            if value and not value.startswith(("data:", "#")):
                self.external.append(value)
        if tag in ("script", "link", "iframe"):
            self.external.append(tag)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(f"unbalanced </{tag}>")

    def handle_data(self, data):
        if self.stack and self.stack[-1] == "h2":
            self.headings.append(data)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "small"
    interp.train(small_two_layer(steps=60), out, progress=False)
    return out


def test_report_html_is_self_contained_and_matches_results(trained, tmp_path):
    data = write_report(interp.load_run(trained), tmp_path, progress=False)
    page = (tmp_path / "report.html").read_text()
    parser = Structure()
    parser.feed(page)
    parser.close()
    assert parser.errors == [] and parser.stack == []
    assert parser.external == []  # opens offline: nothing to fetch
    md = (tmp_path / "report.md").read_text()
    figures = [line for line in md.splitlines() if line.startswith("![")]
    assert len(parser.images) == len(figures) >= 8
    assert all(src.startswith("data:image/png;base64,") and len(src) > 1000 for src in parser.images)
    for title in ["Headline", "Training", "Fourier spectra", "Extraction", "Pruning", "Task-agnostic partition",
                  "Linear probes", "Localisation", "Which labels are fitted first"]:
        assert title in parser.headings and f"## {title}" in md
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved == json.loads(json.dumps(data))
    # independent references: the test accuracy counted from the model's own outputs, and the
    # phase from the thresholds by hand
    run = interp.load_run(trained)
    ds = run.dataset
    test = (run.model(ds.inputs)[ds.test_mask].argmax(-1) == ds.true_labels[ds.test_mask]).double().mean().item()
    assert saved["headline"]["raw_test_acc"] == pytest.approx(test, abs=1e-12)
    assert f"| raw model | {test:.1%} |" in md
    memorised = ((run.model(ds.inputs)[ds.noisy_mask].argmax(-1) == ds.labels[ds.noisy_mask]).double().mean().item())
    high, low = test >= 0.9, memorised >= 0.9
    expected = {(True, True): "coexistence", (False, True): "memorisation", (False, False): "forgetting"}.get(
        (high, low), "full inversion" if memorised <= 0.1 else "partial inversion")
    assert saved["headline"]["phase"] == expected
    assert saved["analyses"]["dynamics"]["checkpoint_steps"]  # trajectory sections present
    assert "skipped" not in md.lower()


def test_report_without_trajectory_says_what_it_skips(trained, tmp_path):
    bare = tmp_path / "released"
    bare.mkdir()
    for name in ("config.json", "model.safetensors", "dataset.safetensors", "history.json"):
        shutil.copy2(trained / name, bare / name)
    interp.training.rundir.seal(bare)  # a release assembled by hand records its files
    data = write_report(interp.load_run(bare), tmp_path / "report", progress=False)
    assert data["analyses"]["dynamics"]["checkpoint_steps"] == []
    assert "need a checkpoint trajectory, which this run does not have" in (tmp_path / "report" / "report.md").read_text()


def test_demo_prints_the_headline(trained, tmp_path, capsys):
    assert main(["demo", "--model", str(trained), "--out", str(tmp_path / "demo"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    headline = json.loads((tmp_path / "demo" / "results.json").read_text())["headline"]
    assert f"{headline['raw_test_acc']:.1%}" in out and f"{headline['label_free_test_acc']:.1%}" in out
    assert "neurons" in out and (tmp_path / "demo" / "report.html").exists()


@pytest.mark.parametrize("test,memorised,expected", [
    (0.99, 0.98, "coexistence"), (0.99, 0.5, "partial inversion"), (1.0, 0.0, "full inversion"),
    (0.01, 1.0, "memorisation"), (0.3, 0.4, "forgetting"), (0.95, None, "generalisation"),
])
def test_phase_thresholds(test, memorised, expected):
    assert phase({"test_acc": test, "noisy_observed_acc": memorised}) == expected
