"""The benchmark suite and the docs it feeds: every result records where it comes from, the
docs' figures are the results' own, and the README and docs speak of the product, not of
its development."""
from __future__ import annotations

import glob
import json
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "benchmarks")
sys.path.insert(0, BENCH)  # the benchmark scripts import each other as top-level modules

import _results  # noqa: E402
import report  # noqa: E402
import run  # noqa: E402
import suite  # noqa: E402

RESULTS = sorted(glob.glob(os.path.join(BENCH, "results", "*.json")))
HELPERS = {"_results.py", "suite.py", "run.py", "report.py", "peers_models.py"}


@pytest.mark.parametrize("path", RESULTS, ids=os.path.basename)
def test_every_result_records_commit_date_machine_and_command(path):
    with open(path) as fh:
        doc = json.load(fh)
    p = doc["provenance"]
    assert re.fullmatch(r"[0-9a-f]{40}", p["commit"]), p["commit"]
    assert re.match(r"\d{4}-\d{2}-\d{2}", p["date"]), p["date"]
    assert p["machine"]["cpus"] >= 1 and p["machine"]["memory_gib"] > 0
    assert "gpu" in p["machine"]
    assert p["command"].strip()


def test_the_docs_and_the_readme_headline_agree_with_the_results():
    assert report.stale() == [], "run: make bench-docs"


def test_a_changed_figure_makes_the_docs_stale(monkeypatch):
    real = report.load

    def shifted(name):
        doc = real(name)
        if name == "nmf_scaling.json":
            doc["results"][0]["ours"]["seconds"] += 1.0
        return doc

    monkeypatch.setattr(report, "load", shifted)
    assert report.stale() == ["docs/benchmarks.md"]


def test_every_benchmark_script_and_result_belongs_to_the_suite():
    scripts = {os.path.basename(p) for p in glob.glob(os.path.join(BENCH, "*.py"))} - HELPERS
    assert scripts == {b.script for b in suite.SUITE}
    claimed = {f for b in suite.SUITE for f in b.results}
    assert {os.path.basename(p) for p in RESULTS} == claimed
    for b in suite.SUITE:
        assert b.name in suite.SUMMARIES


def test_provenance_names_this_checkout_and_the_command(tmp_path):
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    if head.returncode != 0:
        pytest.skip("not a git checkout")
    out = tmp_path / "r.json"
    _results.write("probe", [{"x": 1}], str(out))
    doc = json.loads(out.read_text())
    assert list(doc)[0] == "provenance"
    assert doc["provenance"]["commit"] == head.stdout.strip()
    assert doc["provenance"]["machine"]["cpus"] == os.cpu_count()
    assert doc["results"] == [{"x": 1}]


def test_the_runner_says_what_a_benchmark_needs_and_keeps_quick_results_apart(tmp_path):
    demo = suite.by_name("demo_quality")
    assert "make demo" in run.missing(demo, str(tmp_path))
    (tmp_path / "stage_runs").mkdir()
    assert run.missing(demo, str(tmp_path)) is None
    cmd = run.command(suite.by_name("nmf_scaling"), quick=True, lakehouse=str(tmp_path))
    assert cmd[cmd.index("--out") + 1].startswith(run.QUICK_DIR)
    assert run.command(suite.by_name("nmf_scaling"), quick=False, lakehouse=str(tmp_path))[2:] == []
    with pytest.raises(KeyError, match="the suite has"):
        suite.by_name("nope")


def test_readme_and_docs_describe_the_product_not_its_history():
    readme = open(os.path.join(ROOT, "README.md")).read()
    assert len(readme.splitlines()) <= 250
    for path in [os.path.join(ROOT, "README.md")] + glob.glob(os.path.join(ROOT, "docs", "*.md")):
        text = open(path).read()
        for pattern in (r"session [0-9]", r"/tmp/", r"\b(?=[0-9a-f]*[0-9])(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}\b"):
            hits = [m.group(0) for m in re.finditer(pattern, text)]
            assert not hits, f"{os.path.relpath(path, ROOT)}: {hits[:5]}"
