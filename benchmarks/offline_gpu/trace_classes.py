"""Step 1 (here, on a CPU machine): run score_throughput.py on a standalone cluster with a fake
GPU discovery script and every JVM logging the classes it loads, to learn which jars (and JDK
modules) the GPU run needs. Writes <out>/loaded.txt ("<jar> <class>" per line) and
<out>/modules.txt.

    .venv/bin/python benchmarks/offline_gpu/trace_classes.py /tmp/offline_gpu
"""
import glob
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.dirname(HERE)
RUN = """
import os, sys
sys.path.insert(0, {tests!r}); sys.path.insert(0, {bench!r})
import standalone
orig = standalone.scrubbed_env
standalone.scrubbed_env = lambda *a, **k: {{**orig(*a, **k), "JAVA_TOOL_OPTIONS": os.environ["JAVA_TOOL_OPTIONS"]}}
import score_throughput
sys.argv = ["score_throughput.py"] + sys.argv[1:]
score_throughput.main()
"""


def main() -> None:
    out = os.path.abspath(sys.argv[1])
    logs = os.path.join(out, "classlog")
    os.makedirs(logs, exist_ok=True)
    fake = os.path.join(out, "fake_gpu.sh")
    with open(fake, "w") as fh:
        fh.write('#!/bin/sh\necho \'{"name": "gpu", "addresses": ["0"]}\'\n')
    os.chmod(fake, 0o755)
    env = dict(os.environ, JAVA_TOOL_OPTIONS=f"-Xlog:class+load=info:file={logs}/cl_%p.log")
    code = RUN.format(tests=os.path.join(os.path.dirname(BENCH), "tests"), bench=BENCH)
    for extra in (["--cluster", "--models", "scene"], ["--gpu", "--gpu-discovery", fake, "--models", "scene"]):
        subprocess.run([sys.executable, "-c", code, "--n", "300", "--arms", "a,b,c,d", "--tasks-per-gpu", "2",
                        "--output", os.path.join(out, "trace_run.json")] + extra, check=True, cwd=BENCH, env=env)
    jar_re = re.compile(r"\] (\S+) source: .*/([^/]+\.jar)")
    mod_re = re.compile(r"source: jrt:/([a-z.]+)")
    loaded, modules = set(), set()
    for path in glob.glob(os.path.join(logs, "*.log")):
        with open(path, errors="replace") as fh:
            for line in fh:
                m = jar_re.search(line)
                if m:
                    loaded.add(f"{m.group(2)} {m.group(1)}")
                m = mod_re.search(line)
                if m:
                    modules.add(m.group(1))
    with open(os.path.join(out, "loaded.txt"), "w") as fh:
        fh.write("\n".join(sorted(loaded)) + "\n")
    with open(os.path.join(out, "modules.txt"), "w") as fh:
        fh.write(",".join(sorted(modules | {"jdk.incubator.vector", "jdk.crypto.ec", "jdk.charsets"})) + "\n")
    print(f"{len(loaded)} classes from {len({x.split()[0] for x in loaded})} jars; modules {sorted(modules)}")


if __name__ == "__main__":
    main()
