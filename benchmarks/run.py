"""Run the maintained benchmark suite (benchmarks/suite.py), then render docs/benchmarks.md
and the README's headline table from the results.

    make bench                      # every benchmark at full size: results/*.json, then the docs
    make bench QUICK=1              # a smoke run at small sizes into .cache/bench-quick/ (the docs stay)
    .venv/bin/python benchmarks/run.py --only nmf_scaling similarity_scaling

Benchmarks that read a demo lakehouse run when ``--lakehouse`` holds a finished demo (``make
demo``), the peers when ``make peers-env`` has built their environment; the others are
skipped with the reason. A GPU benchmark never runs here (docs/operations.md, GPU).
"""
from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time

import suite

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
QUICK_DIR = os.path.join(ROOT, ".cache", "bench-quick")


def missing(b: suite.Benchmark, lakehouse: str) -> str | None:
    """Why ``b`` cannot run here, or None."""
    if suite.GPU in b.needs:
        return "needs a GPU machine"
    if suite.DEMO in b.needs and not os.path.isdir(os.path.join(lakehouse, "stage_runs")):
        return f"needs a finished demo lakehouse at {lakehouse} (make demo)"
    if suite.PEERS in b.needs and not os.path.exists(os.path.join(ROOT, ".venv-peers", ".installed")):
        return "needs the peers' environment (make peers-env)"
    return None


def command(b: suite.Benchmark, quick: bool, lakehouse: str) -> list[str]:
    args = list(b.quick if quick else b.full)
    if suite.DEMO in b.needs:
        args += ["--lakehouse", lakehouse]
    if quick:
        args += [b.out_flag, os.path.join(QUICK_DIR, b.results[0])]
    return [sys.executable, os.path.join(HERE, b.script)] + args


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, results into .cache/bench-quick/")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="these benchmarks only")
    ap.add_argument("--lakehouse", default=os.path.join(ROOT, "lakehouse"), help="a finished demo lakehouse")
    args = ap.parse_args(argv)
    chosen = [suite.by_name(n) for n in args.only] if args.only else list(suite.SUITE)
    lakehouse = os.path.abspath(args.lakehouse)
    failed, skipped = [], []
    for i, b in enumerate(chosen, 1):
        why = missing(b, lakehouse)
        if why:
            print(f"[{i}/{len(chosen)}] {b.name}: skipped, {why}", flush=True)
            skipped.append(b.name)
            continue
        cmd = command(b, args.quick, lakehouse)
        shown = " ".join(shlex.quote(os.path.relpath(c, ROOT) if os.path.isabs(c) and c.startswith(ROOT) else c)
                         for c in ["python"] + cmd[1:])
        print(f"[{i}/{len(chosen)}] {b.name}: {shown}", flush=True)
        t0 = time.perf_counter()
        env = dict(os.environ, VISTARANK_BENCH_COMMAND=shown)
        rc = subprocess.run(cmd, cwd=HERE, env=env).returncode
        print(f"[{i}/{len(chosen)}] {b.name}: {'ok' if rc == 0 else f'FAILED (exit {rc})'} in "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
        if rc:
            failed.append(b.name)
    if not args.quick:
        import report

        report.write_all()
    print(f"benchmarks: {len(chosen) - len(failed) - len(skipped)} ran, {len(skipped)} skipped, "
          f"{len(failed)} failed{': ' + ', '.join(failed) if failed else ''}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
