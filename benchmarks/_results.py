"""Shared by the benchmark scripts: write a results document as JSON."""
from __future__ import annotations

import json
import os
import platform


def write(name: str, results: list[dict], out: str, **extra) -> None:
    doc = {"benchmark": name, "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
           **extra, "results": results}
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as fh:
        json.dump(doc, fh, indent=1)
    print("wrote", out)
