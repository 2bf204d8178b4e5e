"""A real Spark standalone cluster on 127.0.0.1 for the tests: a Master and Workers, each its
own JVM started by ``bin/spark-class`` from a separate SPARK_HOME (a hard-linked copy of the
pyspark install), with a scrubbed environment and their own working directories, so that
executors see only what spark-submit ships them."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field

# the only variables the daemons get: no PYTHONPATH, no VIRTUAL_ENV, no venv on PATH
SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spark_home_copy(dest: str) -> str:
    """A SPARK_HOME outside the virtual environment: bin, sbin, jars, conf and python/lib of the
    installed pyspark, hard-linked where the filesystem allows (cheap), copied otherwise."""
    import pyspark

    src = os.path.dirname(pyspark.__file__)
    os.makedirs(dest, exist_ok=True)
    for part in ("bin", "sbin", "jars", "python/lib", "conf"):
        s = os.path.join(src, part)
        if not os.path.isdir(s):
            continue
        d = os.path.join(dest, part)
        try:
            shutil.copytree(s, d, copy_function=os.link, dirs_exist_ok=True)
        except OSError:
            shutil.copytree(s, d, dirs_exist_ok=True)
    return dest


def scrubbed_env(spark_home: str, home: str, **extra: str) -> dict[str, str]:
    env = {"PATH": SAFE_PATH, "HOME": home, "SPARK_HOME": spark_home, "LANG": "C.UTF-8",
           "SPARK_LOG_DIR": os.path.join(home, "logs"), "SPARK_NO_DAEMONIZE": "1"}
    if os.environ.get("JAVA_HOME"):
        env["JAVA_HOME"] = os.environ["JAVA_HOME"]
    env.update(extra)
    return env


def gpu_worker_env(discovery: str) -> dict[str, str]:
    """A Worker's extra environment to offer its NVIDIA GPUs as the Spark resource ``gpu``: the
    discovery script, and nvidia-smi's folder on the scrubbed PATH (some machines keep it
    outside, in /usr/local/nvidia/bin)."""
    smi = shutil.which("nvidia-smi")
    return {"PATH": SAFE_PATH + (os.pathsep + os.path.dirname(smi) if smi else ""),
            "SPARK_WORKER_OPTS": ("-Dspark.worker.resource.gpu.amount=1 "
                                  f"-Dspark.worker.resource.gpu.discoveryScript={discovery}")}


def executor_python_conf() -> dict[str, str]:
    """Settings that give executors this interpreter, this PYTHONPATH and this Keras backend
    (and the backends' GPU memory settings, where set): the daemons' scrubbed environment
    passes none of them on."""
    import sys

    conf = {"spark.pyspark.python": sys.executable,
            "spark.executorEnv.PYTHONPATH": os.environ.get("PYTHONPATH", ""),
            "spark.executorEnv.KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "tensorflow")}
    for key in ("PYTORCH_CUDA_ALLOC_CONF", "XLA_PYTHON_CLIENT_PREALLOCATE"):
        if key in os.environ:
            conf[f"spark.executorEnv.{key}"] = os.environ[key]
    return conf


@dataclass
class Cluster:
    root: str
    spark_home: str
    master_url: str = ""
    web_url: str = ""
    procs: list[subprocess.Popen] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)

    def _start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
        cwd = os.path.join(self.root, name)
        os.makedirs(cwd, exist_ok=True)
        log = os.path.join(cwd, f"{name}.log")
        self.logs.append(log)
        with open(log, "w") as fh:
            p = subprocess.Popen([os.path.join(self.spark_home, "bin", "spark-class")] + args, cwd=cwd, env=env,
                                 stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(p)
        return p

    def start(self, workers: int = 2, cores: int = 1, memory: str = "4g", timeout: float = 120,
              worker_env: dict[str, str] | None = None) -> "Cluster":
        port, web = free_port(), free_port()
        self.master_url, self.web_url = f"spark://127.0.0.1:{port}", f"http://127.0.0.1:{web}"
        home = os.path.join(self.root, "home")
        os.makedirs(home, exist_ok=True)
        self._start("master", ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                               "--port", str(port), "--webui-port", str(web)], scrubbed_env(self.spark_home, home))
        for i in range(workers):
            wdir = os.path.join(self.root, f"worker{i}", "work")
            self._start(f"worker{i}", ["org.apache.spark.deploy.worker.Worker", self.master_url, "--host", "127.0.0.1",
                                       "--cores", str(cores), "--memory", memory, "--work-dir", wdir,
                                       "--webui-port", str(free_port())],
                        scrubbed_env(self.spark_home, home, **(worker_env or {})))
        deadline = time.time() + timeout
        while time.time() < deadline:
            state = self.state()
            if state and len([w for w in state.get("workers", []) if w.get("state") == "ALIVE"]) >= workers:
                return self
            if any(p.poll() is not None for p in self.procs):
                break
            time.sleep(1)
        raise RuntimeError(f"the standalone cluster did not come up; logs: {self.tail_logs()}")

    def state(self) -> dict | None:
        try:
            with urllib.request.urlopen(self.web_url + "/json/", timeout=5) as r:
                return json.load(r)
        except OSError:
            return None

    def tail_logs(self, chars: int = 2000) -> str:
        out = []
        for log in self.logs:
            if os.path.exists(log):
                with open(log, errors="replace") as fh:
                    out.append(f"--- {log}\n{fh.read()[-chars:]}")
        return "\n".join(out)

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=10)

    def daemon_environ(self, proc: subprocess.Popen) -> dict[str, str]:
        """The environment a daemon's JVM really runs with (from /proc)."""
        with open(f"/proc/{proc.pid}/environ", "rb") as fh:
            pairs = [kv.split(b"=", 1) for kv in fh.read().split(b"\0") if b"=" in kv]
        return {k.decode(): v.decode(errors="replace") for k, v in pairs}


def event_log_events(event_dir: str) -> list[dict]:
    """Every event of the (single) application event log under ``event_dir``."""
    files = [os.path.join(event_dir, f) for f in os.listdir(event_dir) if not f.startswith(".")]
    events = []
    for path in files:
        with open(path) as fh:
            events += [json.loads(line) for line in fh if line.strip()]
    return events
