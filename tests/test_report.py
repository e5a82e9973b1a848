import contextlib
import io
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


@pytest.fixture(scope="module")
def demo(trained, tmp_path_factory):
    """`interp demo --model RUN --out DIR` once for this module's tests of the report and of the
    demo (the report takes seconds): (DIR, what it printed, what `write_report` returned to it)."""
    import interp.reporting.report as report_module

    out_dir, printed, returned = tmp_path_factory.mktemp("demo") / "demo", io.StringIO(), []

    def recording(*args, **kwargs):
        returned.append(write_report(*args, **kwargs))
        return returned[-1]

    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed):
        patch.setattr(report_module, "write_report", recording)
        assert main(["demo", "--model", str(trained), "--out", str(out_dir), "--no-progress"]) == 0
    (data,) = returned  # the demo wrote its report through write_report, once
    return out_dir, printed.getvalue(), data


def test_report_html_is_self_contained_and_matches_results(trained, demo):
    out_dir, _, data = demo
    page = (out_dir / "report.html").read_text()
    parser = Structure()
    parser.feed(page)
    parser.close()
    assert parser.errors == [] and parser.stack == []
    assert parser.external == []  # opens offline: nothing to fetch
    md = (out_dir / "report.md").read_text()
    figures = [line for line in md.splitlines() if line.startswith("![")]
    assert len(parser.images) == len(figures) >= 8
    assert all(src.startswith("data:image/png;base64,") and len(src) > 1000 for src in parser.images)
    for title in ["Headline", "Training", "Fourier spectra", "Extraction", "Pruning", "Task-agnostic partition",
                  "Linear probes", "Localisation", "Which labels are fitted first"]:
        assert title in parser.headings and f"## {title}" in md
    saved = json.loads((out_dir / "results.json").read_text())
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


def test_demo_prints_the_headline(demo):
    out_dir, out, _ = demo
    headline = json.loads((out_dir / "results.json").read_text())["headline"]
    assert f"{headline['raw_test_acc']:.1%}" in out and f"{headline['label_free_test_acc']:.1%}" in out
    assert "neurons" in out and (out_dir / "report.html").exists()


@pytest.mark.parametrize("test,memorised,expected", [
    (0.99, 0.98, "coexistence"), (0.99, 0.5, "partial inversion"), (1.0, 0.0, "full inversion"),
    (0.01, 1.0, "memorisation"), (0.3, 0.4, "forgetting"), (0.95, None, "generalisation"),
])
def test_phase_thresholds(test, memorised, expected):
    assert phase({"test_acc": test, "noisy_observed_acc": memorised}) == expected
