"""Distribution for real: the wheel alone in a fresh Python 3.12 environment, and the tiny
pipeline through ``./spark-submit.sh --cluster`` on a Spark standalone cluster of two
1-core Workers on 127.0.0.1 (separate JVMs, scrubbed environments), whose executors run
only the packed environment.

The packed environment (scripts/pack_env.sh) is built for Python 3.12 on purpose: the
driver and executors of the cluster run then prove the wheel, the pins and the tiny
pipeline on 3.12, while the rest of the suite runs on 3.11.
"""
from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile

import pytest

from conftest import TINY, make_cfg
from standalone import Cluster, event_log_events, spark_home_copy
from vistarank import io
from vistarank import tables as T

pytestmark = pytest.mark.cluster

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY312 = os.environ.get("VISTARANK_PY312") or next(
    iter(sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python3.12")))), "python3.12")
# the source tree and the development venv: executors must import nothing from either
SOURCE_DIRS = [os.path.join(ROOT, d) for d in ("lib", "udfs", "jobs", "conf", ".venv")]


def _in_source(path: str) -> bool:
    """A path in the source tree or the development venv (the checkout root itself included)."""
    path = os.path.realpath(path)
    return path == ROOT or any(path == d or path.startswith(d + "/") for d in SOURCE_DIRS)


def _run(args, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    return subprocess.run(args, **kw)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("wheel"))
    p = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", out, ROOT], timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    return glob.glob(os.path.join(out, "vistarank-*.whl"))[0]


@pytest.fixture(scope="module")
def packed(wheel) -> tuple[str, str]:
    """The packed executor environment for Python 3.12: (its venv, its archive)."""
    if _run([PY312, "--version"]).returncode != 0:
        pytest.fail(f"Python 3.12 is needed for the 3.12 run ({PY312}); set VISTARANK_PY312")
    env = dict(os.environ, PACK_PYTHON=PY312, PACK_COMPRESS_LEVEL="1", VENV=os.path.dirname(os.path.dirname(sys.executable)))
    p = _run([os.path.join(ROOT, "scripts", "pack_env.sh"), wheel], env=env, cwd=ROOT, timeout=1500)
    assert p.returncode == 0, p.stderr[-3000:]
    venv, archive = p.stdout.split()[-2:]
    return venv, archive


@pytest.fixture(scope="module")
def spark_home(tmp_path_factory) -> str:
    return spark_home_copy(str(tmp_path_factory.mktemp("spark-home")))


def _cluster_pythonpath(spark_home: str) -> str:
    """What a cluster's Spark puts on a Python process's path: its pyspark and py4j, and the
    Delta jar (which carries Delta's Python package)."""
    libs = sorted(glob.glob(os.path.join(spark_home, "python", "lib", "*.zip")))
    delta = glob.glob(os.path.join(ROOT, ".cache", "jars", "io.delta_delta-spark_*.jar"))
    return os.pathsep.join(libs + delta)


def test_wheel_carries_every_package_and_imports_alone(wheel, packed, spark_home, tmp_path):
    venv, _ = packed
    names = zipfile.ZipFile(wheel).namelist()
    # every package of the layout is in the wheel, found from the folders, not a list
    for folder, pkg in (("lib", "vistarank"), ("udfs", "vistarank/udfs"), ("jobs", "vistarank/jobs"),
                        ("conf", "vistarank/conf")):
        for init in glob.glob(os.path.join(ROOT, folder, "**", "__init__.py"), recursive=True):
            rel = os.path.relpath(os.path.dirname(init), os.path.join(ROOT, folder))
            target = pkg if rel == "." else f"{pkg}/{rel}"
            assert f"{target}/__init__.py" in names, f"{target} is missing from the wheel"
    assert "vistarank/conf/base.yaml" in names
    modules = sorted(n[:-3].replace("/", ".").removesuffix(".__init__") for n in names
                     if n.startswith("vistarank/") and n.endswith(".py"))
    assert {"vistarank.themes.nmf", "vistarank.rerank.model", "vistarank.training.launcher",
            "vistarank.recsys.engines"} <= set(modules)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": _cluster_pythonpath(spark_home),
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    script = ("import importlib, json, sys, vistarank\n"
              "mods = json.loads(sys.argv[1])\n"
              "for m in mods: importlib.import_module(m)\n"
              "print(json.dumps({'file': vistarank.__file__, 'n': len(mods), 'path': sys.path}))")
    p = _run([os.path.join(venv, "bin", "python"), "-c", script, json.dumps(modules)], env=env, cwd=str(tmp_path),
             timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["n"] == len(modules)
    assert out["file"].startswith(venv), out["file"]
    assert not [x for x in out["path"] if x and _in_source(x)], out["path"]  # "" is the cwd, a temp dir
    scripts = re.findall(r"^(vistarank-[\w-]+) =", zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith("entry_points.txt"))).decode(), re.M)
    assert len(scripts) >= 12
    for s in scripts:
        p = _run([os.path.join(venv, "bin", s), "--help"], env=env, cwd=str(tmp_path), timeout=300)
        assert p.returncode == 0 and "usage:" in p.stdout, f"{s} --help: {p.stderr[-1500:]}"


def test_config_tests_pass_on_python_312(packed, spark_home, tmp_path):
    venv, _ = packed
    py = os.path.join(venv, "bin", "python")
    if _run([py, "-c", "import pytest"]).returncode != 0:
        p = _run([py, "-m", "pip", "install", "--quiet", "-c", os.path.join(ROOT, "constraints.txt"), "pytest"],
                 timeout=300)
        assert p.returncode == 0, p.stderr[-2000:]
    env = dict(os.environ, PYTHONPATH=_cluster_pythonpath(spark_home))
    env.pop("VIRTUAL_ENV", None)
    p = _run([py, "-m", "pytest", "-q", os.path.join(ROOT, "tests", "test_config.py")], env=env, cwd=ROOT,
             timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    assert re.search(r"\d+ passed", p.stdout) and "failed" not in p.stdout
    assert "3.12" in _run([py, "--version"]).stdout


@pytest.fixture(scope="module")
def cluster(spark_home, tmp_path_factory):
    c = Cluster(root=str(tmp_path_factory.mktemp("cluster")), spark_home=spark_home)
    try:
        c.start(workers=2, cores=1, memory="6g")
        yield c
    finally:
        c.stop()


def _submit(stage: str, args: list[str], cluster: Cluster, extra_conf: list[str], timeout: int):
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp"),
           "SPARK_HOME": cluster.spark_home, "SPARK_MASTER": cluster.master_url,
           "VENV": os.path.dirname(os.path.dirname(sys.executable)), "PACK_PYTHON": PY312, "PACK_COMPRESS_LEVEL": "1",
           "TF_CPP_MIN_LOG_LEVEL": "2",
           "SPARK_SUBMIT_ARGS": " ".join([
               "--driver-memory 2g --executor-memory 2g",
               "--conf spark.cores.max=2",
               "--conf spark.scheduler.minRegisteredResourcesRatio=1.0",
               "--conf spark.scheduler.maxRegisteredResourcesWaitingTime=180s",
               "--conf spark.sql.shuffle.partitions=4",
               # Delta rebuilds a table's state in this many tasks (50 by default: for large
               # logs); the tiny tables here want as few as the embedded session uses
               "--conf spark.databricks.delta.snapshotPartitions=2",
               "--conf spark.default.parallelism=2"] + extra_conf)}
    if os.environ.get("JAVA_HOME"):
        env["JAVA_HOME"] = os.environ["JAVA_HOME"]
    return _run([os.path.join(ROOT, "spark-submit.sh"), "--cluster", stage] + args, env=env, cwd=ROOT,
                timeout=timeout)


def _share_world_and_scene_model(spark, session_cfg, cfg) -> None:
    """The session's tiny world (its tables and photos, the photos' hidden truth pointed at the
    copies) and its demo scene model, copied into ``cfg``'s lakehouse: generate_world and
    pretrain_scene_model run on the driver alone, and the local tests cover them; the
    cluster run starts at ingest_images, the first stage whose work is distributed."""
    from pyspark.sql import functions as F

    from vistarank.vision.models import demo_model_dir
    from vistarank.world import generate as G

    for t in (T.SALES, T.USERS, T.VISITS, T.PURCHASES, T.TRUTH_USERS):
        shutil.copytree(io.table_path(session_cfg, t), io.table_path(cfg, t))
    old, new = G.local_image_root(session_cfg), G.local_image_root(cfg)
    shutil.copytree(os.path.dirname(old), os.path.dirname(new))  # the photos and the world's marker
    truth = io.read(spark, session_cfg, T.TRUTH_IMAGES, allow_truth=True)
    io.write(truth.withColumn("uri", F.replace("uri", F.lit("file:" + old), F.lit("file:" + new))), cfg, T.TRUTH_IMAGES)
    shutil.copytree(demo_model_dir(session_cfg), demo_model_dir(cfg))
    assert G.is_current(spark, cfg)


def test_tiny_pipeline_on_a_two_worker_standalone_cluster(packed, cluster, spark, labelled, tmp_path):
    # the daemons run outside the checkout, without the venv or a PYTHONPATH
    for proc in cluster.procs:
        environ = cluster.daemon_environ(proc)
        assert "PYTHONPATH" not in environ and "VIRTUAL_ENV" not in environ
        assert ".venv" not in environ["PATH"]
        assert not os.path.realpath(f"/proc/{proc.pid}/cwd").startswith(ROOT)

    # The tiny pipeline end to end: labelling UDF, barrier training, Delta commits. The demo world
    # and its scene model (test data, made on the driver) are the session's, and the cluster run is
    # kept lean where distribution is not what is tested: no fine-tuning comparison, no label
    # noise (cleaning is the local tests'), fewer epochs, one grid point for the regression and
    # for ALS. One submission (the 2 GB environment shipped and unpacked once): --doctor first
    # reports what the driver and each executor see.
    lake = str(tmp_path / "lakehouse")
    lean = [f"lakehouse.root={lake}", f"scene_model.dir={lake}/models", "training.workers=2",
            "training.fine_tune.enabled=false", "training.epochs=10", "training.label_noise=0",
            "rerank.reg_params=[0.01]", "rerank.elastic_net_params=[0.0]", "rerank.als_alphas=[]"]
    _share_world_and_scene_model(spark, labelled, make_cfg(lake, *lean))
    events = tmp_path / "events"
    events.mkdir()
    sets = [a for kv in TINY + lean for a in ("--set", kv)]
    doctor = ["--doctor", "--tasks", "2", "--forbid-on-executors", ROOT] + [a for d in SOURCE_DIRS
                                                                          for a in ("--forbid", d)]
    p = _submit("pipeline", ["--run-date", "latest"] + doctor + sets, cluster,
                ["--conf spark.eventLog.enabled=true", "--conf spark.eventLog.compress=false",
                 "--conf spark.eventLog.rolling.enabled=false", f"--conf spark.eventLog.dir=file://{events}"], timeout=1800)
    line = re.search(r"^doctor: (\{.*\})$", p.stdout, re.M)
    assert line, p.stdout[-3000:] + p.stderr[-6000:] + cluster.tail_logs()

    # 1. what the executors saw: the shipped environment only, Python 3.12, two executors
    report = json.loads(line.group(1))
    assert report["master"] == cluster.master_url
    assert report["forbidden_hits"] == []
    execs = report["executors"]
    assert len({e["pid"] for e in execs}) == 2  # two Python workers, one per 1-core executor
    for e in execs:
        assert e["python_version"].startswith("3.12.")
        assert "/environment/" in e["vistarank"] and e["cwd"].startswith(cluster.root)
        assert "PYTHONPATH" not in e["env"] or ROOT not in e["env"]["PYTHONPATH"]
    assert report["driver"]["python_version"].startswith("3.12.")

    # 2. the pipeline
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-6000:]
    times = {m.group(1): float(m.group(2)) for m in re.finditer(r"^  (\w+) \(([\d.]+)s\)$", p.stdout, re.M)}
    print("cluster stage times:", json.dumps(times))
    # the world and the scene model from the local session are current: every other stage ran,
    # in the pipeline's order
    assert list(times) == ["ingest_images", "label_images", "train_head", "fit_themes", "build_candidates",
                           "train_reranker", "recommend"], times
    assert "\r[Stage" not in p.stderr  # no console progress bar in a captured log

    # the outputs, read back here: Delta tables every later reader can open
    cfg = make_cfg(lake, *lean)
    images = io.read(spark, cfg, T.IMAGES).count()
    assert images > 0 and io.read(spark, cfg, T.IMAGE_LABELS).count() == images
    assert io.read(spark, cfg, T.IMAGE_AREAS).count() > 0
    recs = io.read(spark, cfg, T.RECOMMENDATIONS)
    per_user = recs.groupBy("user_id").count().agg({"count": "max"}).first()[0]
    assert recs.count() > 0 and per_user == cfg.rerank.top_n

    # where the work ran, from Spark's own event log
    ev = event_log_events(str(events))
    task_ends = [e for e in ev if e["Event"] == "SparkListenerTaskEnd"]
    executors = {e["Task Info"]["Executor ID"] for e in task_ends}
    assert executors == {"0", "1"}, executors
    barrier = {e["Stage Info"]["Stage ID"]: e["Stage Info"]["Stage Name"] for e in ev
               if e["Event"] == "SparkListenerStageSubmitted"
               and any(r.get("Barrier") for r in e["Stage Info"]["RDD Info"])}
    # the doctor's probe is a barrier stage too: training's are the others
    assert any("doctor.py" in name for name in barrier.values()), barrier
    barrier_stages = {s for s, name in barrier.items() if "doctor.py" not in name}
    assert barrier_stages, "no barrier training stage ran"
    barrier_execs = {}
    for e in task_ends:
        if e["Stage ID"] in barrier_stages and e["Task End Reason"]["Reason"] == "Success":
            barrier_execs.setdefault(e["Stage ID"], set()).add(e["Task Info"]["Executor ID"])
    assert any(len(x) == 2 for x in barrier_execs.values()), barrier_execs  # 2 workers on the 2 executors
    plans = [e.get("physicalPlanDescription", "") for e in ev
             if e["Event"].endswith("SparkListenerSQLExecutionStart")]
    assert any("ArrowEvalPython" in pl for pl in plans), "the labelling pandas UDF did not run"
