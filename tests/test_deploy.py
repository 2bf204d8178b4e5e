"""spark-submit.sh runs a stage locally; the Databricks bundle names real entry points and flags."""
import glob
import os
import re
import subprocess
import sys

import yaml

from vistarank import io
from vistarank import tables as T
from conftest import make_cfg

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _console_scripts():
    with open(os.path.join(ROOT, "setup.py")) as fh:
        src = fh.read()
    stages = re.search(r"STAGES = \[(.*?)\]", src, re.S).group(1)
    names = re.findall(r'"(\w+)"', stages)
    return {f"vistarank-{s.replace('_', '-')}": s for s in names}


def test_bundle_parses_and_names_existing_entry_points_and_parameters():
    with open(os.path.join(ROOT, "databricks.yml")) as fh:
        bundle = yaml.safe_load(fh)
    assert set(bundle["targets"]) >= {"dev", "prod"}
    scripts = _console_scripts()
    tasks = []
    for path in glob.glob(os.path.join(ROOT, "resources", "*.yml")):
        with open(path) as fh:
            res = yaml.safe_load(fh)
        for job in res["resources"]["jobs"].values():
            keys = {c["job_cluster_key"] for c in job.get("job_clusters", [])}
            for task in job["tasks"]:
                assert task["job_cluster_key"] in keys
                tasks.append(task)
    assert tasks
    for task in tasks:
        wt = task["python_wheel_task"]
        assert wt["package_name"] == "vistarank"
        stage = scripts[wt["entry_point"]]  # KeyError: an entry point setup.py does not define
        module = __import__(f"vistarank.jobs.{stage}", fromlist=["main"])
        params = [p.replace("${var.run_date}", "latest").replace("${var.lakehouse_root}", "/tmp/x")
                  for p in wt["parameters"]]
        from vistarank.jobs.common import parser
        args, unknown = parser(stage, "").parse_known_args(params)
        assert not unknown, f"{task['task_key']}: unknown parameters {unknown}"
        assert args.env == "databricks"
        assert hasattr(module, "main")
    gpu = [t for t in tasks if t["task_key"] == "label_images"]
    assert gpu and gpu[0]["job_cluster_key"] == "gpu"
    with open(os.path.join(ROOT, "resources", "vistarank_job.yml")) as fh:
        assert "quartz_cron_expression" in fh.read()


def test_spark_submit_runs_one_stage_locally(spark, tmp_path):
    root = str(tmp_path / "lh")
    small = ["world.sizes.tiny.n_sales=6", "world.sizes.tiny.n_hotels=5", "world.sizes.tiny.n_users=20",
             "world.sizes.tiny.n_days=4", "world.sizes.tiny.images_per_sale_max=3"]
    args = [os.path.join(ROOT, "spark-submit.sh"), "generate_world", "--set", "world.size=tiny",
            "--set", f"lakehouse.root={root}"]
    for s in small:
        args += ["--set", s]
    env = dict(os.environ, VENV=os.path.dirname(os.path.dirname(sys.executable)), SPARK_MASTER="local[1]")
    p = subprocess.run(args, capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "generate_world" in p.stdout and "sales" in p.stdout
    cfg = make_cfg(root, *small)
    assert io.read(spark, cfg, T.SALES).count() == 6


def test_spark_submit_rejects_unknown_stage():
    p = subprocess.run([os.path.join(ROOT, "spark-submit.sh"), "no_such_stage"], capture_output=True, text=True)
    assert p.returncode == 2 and "unknown stage" in p.stderr
