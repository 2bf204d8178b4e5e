"""Worker-side probe for the doctor job: what a Python worker sees of its environment."""
from __future__ import annotations

import json
import os
import socket
import sys
from typing import Iterable, Iterator

# Environment variables worth reporting (never secrets: names that point at code or interpreters).
ENV_KEYS = ("PYTHONPATH", "VIRTUAL_ENV", "PYSPARK_PYTHON", "SPARK_HOME", "PWD", "HOME")


def environment_report() -> dict:
    """Interpreter, module origins, sys.path, working directory and a few variables."""
    import pyspark

    import vistarank

    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "python": sys.executable,
        "python_version": ".".join(map(str, sys.version_info[:3])),
        "cwd": os.getcwd(),
        "vistarank": os.path.dirname(vistarank.__file__),
        "pyspark": os.path.dirname(pyspark.__file__),
        "pyspark_version": pyspark.__version__,
        # absolute here: a relative entry means this process's working directory, not the reader's
        "sys_path": [os.path.abspath(p) for p in sys.path if p],
        "env": {k: os.environ[k] for k in ENV_KEYS if k in os.environ},
    }


def task_report(_: Iterable) -> Iterator[str]:
    """One report per task, with its partition and stage."""
    from pyspark import TaskContext

    ctx = TaskContext.get()
    rep = environment_report()
    rep["partition"] = ctx.partitionId() if ctx else None
    rep["stage"] = ctx.stageId() if ctx else None
    yield json.dumps(rep)


def gpu_report(_: Iterable) -> Iterator[str]:
    """One report per task on a GPU executor: the GPU addresses Spark gave the task, and what
    the Keras backend sees once the labelling UDF's set-up has run in this worker."""
    from pyspark import TaskContext

    from vistarank.udfs.model_cache import accelerators, configure_backend

    ctx = TaskContext.get()
    res = ctx.resources() if ctx else {}
    configure_backend()
    import keras

    yield json.dumps({"pid": os.getpid(), "partition": ctx.partitionId() if ctx else None,
                      "task_gpus": list(res["gpu"].addresses) if "gpu" in res else [],
                      "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
                      "backend": keras.backend.backend(), "accelerators": accelerators()})


def forbidden_hits(report: dict, forbidden: list[str]) -> list[str]:
    """Each place in ``report`` that lies under a forbidden path, as ``"field: path"``."""
    roots = [os.path.realpath(f).rstrip("/") + "/" for f in forbidden]
    candidates = [("python", report["python"]), ("cwd", report["cwd"]), ("vistarank", report["vistarank"]),
                  ("pyspark", report["pyspark"])]
    candidates += [("sys.path", p) for p in report["sys_path"]]
    candidates += [(f"env.{k}", part) for k, v in report["env"].items() if k in ("PYTHONPATH", "VIRTUAL_ENV")
                   for part in v.split(os.pathsep) if part and os.path.isabs(part)]
    hits = []
    for field, path in candidates:
        real = os.path.realpath(path).rstrip("/") + "/"
        if any(real.startswith(r) for r in roots):
            hits.append(f"{report.get('host')}:{report.get('pid')} {field}: {path}")
    return hits
