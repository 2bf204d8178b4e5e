"""spark-submit.sh runs a stage locally; the Databricks bundle is valid for the bundle's own model and
names the wheel's entry points, flags and run dates; the wheel leaves the platform's packages alone."""
import datetime as dt
import glob
import os
import re
import subprocess
import sys
import zipfile

import pytest
import yaml

from vistarank import io
from vistarank import tables as T
from conftest import make_cfg
from vistarank.jobs.common import config_from_args

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# top-level keys of a bundle configuration (databricks.yml), from the bundle schema
BUNDLE_KEYS = {"bundle", "include", "artifacts", "variables", "targets", "resources", "workspace", "sync",
               "permissions", "presets", "run_as", "experimental", "scripts", "python"}
RUNTIMES_PY312 = ("17.3.", "18.", "19.")  # Databricks runtimes checked: Python 3.12, Spark 4.0 / 4.1 / 4.2


@pytest.fixture(scope="module")
def wheel_meta(tmp_path_factory) -> tuple[dict[str, str], str]:
    """The built wheel's console scripts (name -> module) and its METADATA."""
    out = str(tmp_path_factory.mktemp("whl"))
    p = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", out, ROOT],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    z = zipfile.ZipFile(glob.glob(os.path.join(out, "*.whl"))[0])
    eps = z.read(next(n for n in z.namelist() if n.endswith("entry_points.txt"))).decode()
    meta = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    return dict(re.findall(r"^(vistarank-[\w-]+) = ([\w.]+):main$", eps, re.M)), meta


def _resources() -> dict[str, dict]:
    jobs = {}
    for path in glob.glob(os.path.join(ROOT, "resources", "*.yml")):
        with open(path) as fh:
            res = yaml.safe_load(fh)
        assert set(res) == {"resources"}, path
        jobs.update(res["resources"]["jobs"])
    return jobs


@pytest.mark.wheel
def test_bundle_is_a_valid_databricks_bundle(wheel_meta):
    from databricks.bundles.jobs import Job

    with open(os.path.join(ROOT, "databricks.yml")) as fh:
        bundle = yaml.safe_load(fh)
    assert set(bundle) <= BUNDLE_KEYS, set(bundle) - BUNDLE_KEYS
    assert set(bundle["targets"]) >= {"dev", "prod"}
    assert bundle["artifacts"]["vistarank_wheel"]["type"] == "whl"
    declared = set(bundle["variables"])
    assert "run_date" not in declared  # the date is the run's own, never a bundle default
    for target in bundle["targets"].values():
        assert set(target.get("variables", {})) <= declared
    text = "".join(open(p).read() for p in glob.glob(os.path.join(ROOT, "resources", "*.yml")))
    used = set(re.findall(r"\$\{var\.(\w+)\}", text))
    assert used <= declared, used - declared
    for key in ("spark_version", "gpu_spark_version"):
        assert bundle["variables"][key]["default"].startswith(RUNTIMES_PY312)
    jobs = _resources()
    assert {"vistarank_pipeline", "vistarank_train_heads"} <= set(jobs)
    for name, spec in jobs.items():
        job = Job.from_dict(spec)  # the bundle's own model: unknown or misspelt fields are errors
        assert job.tasks, name
        for cl in job.job_clusters:
            gpu = "gpu" in cl.job_cluster_key
            conf = cl.new_cluster.spark_conf or {}
            if gpu:
                assert "gpu" in str(cl.new_cluster.spark_version)
                assert conf.get("spark.executor.resource.gpu.amount") == "1"
                assert conf.get("spark.task.resource.gpu.amount") == "1"


@pytest.mark.wheel
def test_bundle_tasks_call_the_wheel_console_scripts_with_valid_flags(wheel_meta):
    from vistarank.jobs.common import parser

    scripts, _ = wheel_meta
    for name, spec in _resources().items():
        params = {p["name"]: p["default"] for p in spec.get("parameters", [])}
        clusters = {c["job_cluster_key"] for c in spec.get("job_clusters", [])}
        for task in spec["tasks"]:
            assert task["job_cluster_key"] in clusters
            assert task["libraries"] == [{"whl": "./dist/*.whl"}]
            wt = task["python_wheel_task"]
            assert wt["package_name"] == "vistarank"
            module = scripts[wt["entry_point"]]  # KeyError: an entry point the wheel does not define
            stage = module.rsplit(".", 1)[1]
            assert hasattr(__import__(module, fromlist=["main"]), "main")
            raw = wt["parameters"]
            if "--run-date" in raw:
                # scheduled runs compute the day they run: the job parameter, filled in by Databricks
                assert raw[raw.index("--run-date") + 1] == "{{job.parameters.run_date}}", task["task_key"]
                assert params.get("run_date") == "{{job.start_time.iso_date}}", name
            filled = [p.replace("{{job.parameters.run_date}}", "2026-11-21").replace("${var.lakehouse_root}", "/tmp/x")
                      for p in raw]
            args, unknown = parser(stage, "").parse_known_args(filled)
            assert not unknown, f"{task['task_key']}: unknown parameters {unknown}"
            assert args.env == "databricks"
            if "--run-date" in raw:
                cfg = config_from_args(args)
                assert cfg.effective_run_date() == dt.date(2026, 11, 21)
    on_gpu = {t["task_key"]: t["job_cluster_key"] for spec in _resources().values() for t in spec["tasks"]}
    assert on_gpu["label_images"] == "gpu" and on_gpu["train_head"] == "gpu"
    with open(os.path.join(ROOT, "resources", "vistarank_job.yml")) as fh:
        assert "quartz_cron_expression" in fh.read()


@pytest.mark.wheel
def test_wheel_declares_ranges_and_leaves_the_platform_alone(wheel_meta):
    """The runtime's Spark, Delta and TensorFlow stay: they are extras, never requirements."""
    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet

    _, meta = wheel_meta
    python = SpecifierSet(re.search(r"^Requires-Python: (.+)$", meta, re.M).group(1))
    assert "3.11.7" in python and "3.12.3" in python
    reqs = [Requirement(r) for r in re.findall(r"^Requires-Dist: (.+)$", meta, re.M)]
    base = [r for r in reqs if r.marker is None or "extra" not in str(r.marker)]
    platform = {"pyspark", "delta-spark", "tensorflow", "tensorflow-cpu"}
    assert not [r.name for r in base if r.name in platform]
    assert not [r for r in base if any(s.operator == "==" for s in r.specifier)], "base requirements are pinned"
    extras = {e for r in reqs for e in re.findall(r'extra == "(\w+)"', str(r.marker or ""))}
    assert {"local", "cpu", "gpu", "dev"} <= extras
    with open(os.path.join(ROOT, "constraints.txt")) as fh:
        pins = dict(re.findall(r"^([\w.-]+)==([\w.]+)", fh.read(), re.M))
    for r in reqs:  # every pin of the lock satisfies the wheel's own range
        if r.name in pins:
            assert pins[r.name] in r.specifier, (r, pins[r.name])


@pytest.mark.wheel
def test_spark_submit_runs_one_stage_locally(spark, tmp_path):
    root = str(tmp_path / "lh")
    small = ["world.sizes.tiny.n_sales=6", "world.sizes.tiny.n_hotels=5", "world.sizes.tiny.n_users=20",
             "world.sizes.tiny.n_days=4", "world.sizes.tiny.images_per_sale_max=3"]
    args = [os.path.join(ROOT, "spark-submit.sh"), "generate_world", "--set", "world.size=tiny",
            "--set", f"lakehouse.root={root}"]
    for s in small:
        args += ["--set", s]
    env = dict(os.environ, VENV=os.path.dirname(os.path.dirname(sys.executable)), SPARK_MASTER="local[1]",
               SPARK_SUBMIT_ARGS="--conf spark.databricks.delta.snapshotPartitions=2")  # tiny tables (as embedded)
    p = subprocess.run(args, capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "generate_world" in p.stdout and "sales" in p.stdout
    cfg = make_cfg(root, *small)
    assert io.read(spark, cfg, T.SALES).count() == 6


def test_spark_submit_rejects_unknown_stage():
    p = subprocess.run([os.path.join(ROOT, "spark-submit.sh"), "no_such_stage"], capture_output=True, text=True)
    assert p.returncode == 2 and "unknown stage" in p.stderr
