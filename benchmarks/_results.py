"""Shared by the benchmark scripts: write a results document as JSON with its provenance
(commit, date, machine, command); sample peak memory."""
from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _git(*args: str) -> str | None:
    try:
        p = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return p.stdout.strip() if p.returncode == 0 else None


def machine() -> dict:
    """The machine a figure was measured on: cores, memory, GPU (None without one), OS, Python."""
    try:
        with open("/proc/meminfo") as fh:
            kib = next(int(line.split()[1]) for line in fh if line.startswith("MemTotal:"))
        memory_gib = round(kib / 2**20, 1)
    except (OSError, StopIteration, ValueError):
        memory_gib = None
    gpu = None
    try:
        p = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                           text=True, timeout=30)
        gpu = ", ".join(x.strip() for x in p.stdout.splitlines() if x.strip()) or None
    except (OSError, subprocess.TimeoutExpired):
        pass
    return {"cpus": os.cpu_count(), "memory_gib": memory_gib, "gpu": gpu, "platform": platform.platform(),
            "python": platform.python_version()}


def provenance() -> dict:
    """Where a result comes from: the checkout's commit (``dirty`` when the working tree has
    changes), the UTC date and time, the machine and the command that measured it."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    cmd = os.environ.get("VISTARANK_BENCH_COMMAND") or " ".join(
        ["python", shlex.quote(os.path.relpath(os.path.abspath(sys.argv[0]), ROOT))] + [shlex.quote(a)
                                                                                      for a in sys.argv[1:]])
    return {"commit": _git("rev-parse", "HEAD"), "dirty": bool(status) if status is not None else None,
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine(), "command": cmd}


def dump(doc: dict, out: str) -> None:
    """Write ``doc`` with its provenance as the first key."""
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    doc = {"provenance": provenance(), **{k: v for k, v in doc.items() if k != "provenance"}}
    with open(out, "w") as fh:
        json.dump(doc, fh, indent=1)
        fh.write("\n")


def write(name: str, results: list[dict], out: str, **extra) -> None:
    dump({"benchmark": name, **extra, "results": results}, out)
    print("wrote", out)


def head_figures(spark, cfg) -> dict[str, float]:
    """The overall ``head_evaluation`` figures (no class) of the configured heads version
    (``training.version``), keyed ``task.arm.metric``: a few dozen rows."""
    from pyspark.sql import functions as F

    from vistarank import io
    from vistarank import tables as T

    rows = (io.read(spark, cfg, T.HEAD_EVAL).where(F.col("model_version") == cfg.training.model_version)
            .where(F.col("class").isNull()).collect())
    return {f"{r['task']}.{r['arm']}.{r['metric']}": float(r["value"]) for r in rows}


def transfer_minus_scratch(figures: dict[str, float]) -> float | None:
    """Top-1 of the frozen-feature head minus the same network's from scratch, on the same
    held-out images (:func:`head_figures`); None when either figure is missing."""
    transfer, scratch = figures.get("areas.transfer_head.top1"), figures.get("areas.from_scratch.top1")
    return None if transfer is None or scratch is None else transfer - scratch


def ratio_se(gain, cost) -> float | None:
    """Standard error of mean(gain) / mean(cost) over paired draws (delta method: the
    spread of gain - ratio x cost per draw); None with fewer than 2 draws or no cost."""
    import numpy as np

    g, c = np.asarray(gain, dtype=float), np.asarray(cost, dtype=float)
    if len(g) < 2 or c.mean() <= 0:
        return None
    resid = g - g.mean() / c.mean() * c
    return float(resid.std(ddof=1) / np.sqrt(len(g)) / c.mean())


def local_spark(root: str, driver_memory: str, extra: dict | None = None):
    """A local[2] session with the embedded default's settings (Delta), its status API on
    (the benchmarks read stage metrics from it) and ``extra`` settings."""
    import sys

    from pyspark.sql import SparkSession

    from vistarank.config import load_config
    from vistarank.session import embedded_conf

    conf = embedded_conf(load_config("local", [f"lakehouse.root={root}", f"spark.driver_memory={driver_memory}"]))
    conf.update({"spark.ui.enabled": "true", "spark.ui.showConsoleProgress": "false"} | (extra or {}))
    builder = SparkSession.builder.master("local[2]")
    for k, v in conf.items():
        builder = builder.config(k, v)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


class PeakRSS:
    """Peak resident memory of this process tree, sampled every 0.2 s: in total, of the JVM
    (the driver, which runs the executors in local mode) and of the Python workers (every
    other child process)."""

    def __init__(self) -> None:
        import psutil

        self.proc = psutil.Process()
        self.peak = self.peak_jvm = self.peak_python = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                kids = self.proc.children(recursive=True)
                jvm = sum(p.memory_info().rss for p in kids if p.name().startswith("java"))
                py = sum(p.memory_info().rss for p in kids if not p.name().startswith("java"))
                total = self.proc.memory_info().rss + jvm + py
                self.peak, self.peak_jvm = max(self.peak, total), max(self.peak_jvm, jvm)
                self.peak_python = max(self.peak_python, py)
            except psutil.Error:
                pass
            time.sleep(0.2)

    def __enter__(self):
        self.peak = self.peak_jvm = self.peak_python = 0
        self._stop.clear()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self.thread.join()
