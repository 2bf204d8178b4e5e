"""Step 2 (here): pack what a GPU machine without network needs, in two parts that each fit
the 64 MiB a device call carries (git-ignored folder, default <repo>/.gpu):

  a/jars.tar.xz          the jars the traced runs loaded (whole packages kept; natives for
                         linux x86-64 only), as extracted trees: solid xz packs them far
                         smaller than the jars' own zip compression
  b/jre.tar.xz           a jlink image of the JDK modules Spark loaded (needs a JDK with jmods)
  b/pyspark_py.tar.xz    pyspark's Python package (no jars), py4j and delta-spark's Python part
  b/whl/                 the wheels the device's Python lacks (cp312, manylinux)
  b/rezip.py, b/device_setup.sh

    .venv/bin/python benchmarks/offline_gpu/build_pack.py /tmp/offline_gpu [--out .gpu]

Step 3, on the device: one call stages a/ (``mkdir -p /tmp/stage && cp .gpu/a/jars.tar.xz
/tmp/stage/``, carry ``.gpu/a``), the next ones carry ``.gpu/b`` and start with
``source .gpu/b/device_setup.sh`` (docs/operations.md, "GPU executors (label_images)").
"""
import argparse
import collections
import importlib.metadata as md
import os
import shutil
import subprocess
import sys
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
WHEELS = ["keras", "namex", "optree", "pydantic", "pydantic-core", "annotated-types", "typing-inspection",
          "ImageHash", "PyWavelets"]
OTHER_PLATFORMS = ("darwin", "osx", "mac", "win", "freebsd", "aix", "sunos", "solaris", "arm", "aarch64", "ppc",
                   "s390", "riscv", "loongarch", "i386", "/x86/", "_32", "-32", "android", "musl")


def native_ok(name: str) -> bool:
    n = name.lower()
    return not n.endswith((".so", ".dll", ".dylib", ".jnilib", ".a")) or not any(o in n for o in OTHER_PLATFORMS)


def xz(src_dir: str, members: list[str], dest: str, exclude: tuple[str, ...] = ()) -> None:
    cmd = ["tar", "cf", "-", "-C", src_dir] + [f"--exclude={e}" for e in exclude] + members
    with open(dest, "wb") as fh:
        tar = subprocess.Popen(cmd, stdout=subprocess.PIPE)
        subprocess.run(["xz", "-T2", "-9"], stdin=tar.stdout, stdout=fh, check=True)
        if tar.wait() != 0:
            raise SystemExit(f"tar failed: {cmd}")


def slim_spark(trace: str, work: str) -> str:
    import pyspark

    site = os.path.dirname(os.path.dirname(pyspark.__file__))
    packages = collections.defaultdict(set)
    with open(os.path.join(trace, "loaded.txt")) as fh:
        for line in fh:
            jar, cls = line.split()
            packages[jar].add(cls.replace(".", "/").rsplit("/", 1)[0] + "/" if "." in cls else "")
    epoll = [j for j in os.listdir(os.path.join(site, "pyspark", "jars"))
             if j.startswith("netty-transport-native-epoll") and j.endswith("linux-x86_64.jar")]
    for j in epoll:  # its native library is loaded without a class from it: not in the trace
        packages[j] = set()
    root = os.path.join(work, "slim")
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(os.path.join(site, "pyspark"), os.path.join(root, "pyspark"),
                    ignore=shutil.ignore_patterns("jars", "__pycache__", "tests", "examples", "*.pyc"))
    for d in ("py4j", "delta"):
        shutil.copytree(os.path.join(site, d), os.path.join(root, d), ignore=shutil.ignore_patterns("__pycache__"))
    for jar in sorted(packages):
        src = os.path.join(site, "pyspark", "jars", jar)
        if not os.path.exists(src):
            src = os.path.join(REPO, ".cache", "jars", jar)
        whole = os.path.getsize(src) < 2 << 20 or "netty" in jar
        with zipfile.ZipFile(src) as z:
            for info in z.infolist():
                n = info.filename
                pkg = n.rsplit("/", 1)[0] + "/" if "/" in n else ""
                if info.is_dir() or not native_ok(n) or (not whole and n.endswith(".class")
                                                         and pkg not in packages[jar]):
                    continue
                dst = os.path.join(root, "pyspark", "jars_x", jar, n)
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                with z.open(info) as fi, open(dst, "wb") as fo:
                    shutil.copyfileobj(fi, fo)
    return root


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("trace", help="the folder trace_classes.py wrote")
    p.add_argument("--out", default=os.path.join(REPO, ".gpu"))
    p.add_argument("--jdk", default=os.path.dirname(os.path.dirname(os.path.realpath(shutil.which("java") or "java"))))
    args = p.parse_args()
    a, b = os.path.join(args.out, "a"), os.path.join(args.out, "b")
    for d in (a, b):
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
    work = os.path.join(args.trace, "work")
    os.makedirs(work, exist_ok=True)
    with open(os.path.join(args.trace, "modules.txt")) as fh:
        modules = fh.read().strip()
    jre = os.path.join(work, "jre")
    shutil.rmtree(jre, ignore_errors=True)
    subprocess.run([os.path.join(args.jdk, "bin", "jlink"), "--add-modules", modules, "--strip-debug",
                    "--no-header-files", "--no-man-pages", "--output", jre], check=True)
    xz(work, ["jre"], os.path.join(b, "jre.tar.xz"))
    slim = slim_spark(args.trace, work)
    xz(os.path.join(slim, "pyspark"), ["jars_x"], os.path.join(a, "jars.tar.xz"))
    xz(slim, ["pyspark", "py4j", "delta"], os.path.join(b, "pyspark_py.tar.xz"), exclude=("pyspark/jars_x",))
    pins = [f"{name}=={md.version(name)}" for name in WHEELS]
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                    "--python-version", "3.12", "--implementation", "cp", "--platform", "manylinux_2_28_x86_64",
                    "--platform", "manylinux_2_27_x86_64", "--platform", "manylinux_2_17_x86_64",
                    "--platform", "manylinux2014_x86_64", "-d", os.path.join(b, "whl")] + pins, check=True)
    for f in ("rezip.py", "device_setup.sh"):
        shutil.copy(os.path.join(HERE, f), b)
    for d in (a, b):
        size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(d) for f in fs)
        print(f"{d}: {size / 2**20:.1f} MiB" + ("  (over the 64 MiB a call carries)" if size > 62 * 2**20 else ""))


if __name__ == "__main__":
    main()
