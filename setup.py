"""vistarank: images to recommendations, on Spark.

One importable package, ``vistarank``, assembled from the design card's layout:
``lib/`` is ``vistarank``, ``udfs/`` is ``vistarank.udfs``, ``jobs/`` is
``vistarank.jobs`` and ``conf/`` ships as ``vistarank.conf`` (package data), so a
wheel carries everything an executor or a Databricks wheel task needs. Sub-packages
are found from the layout (``find_packages``), never listed by hand.

Dependencies are split by who provides them: the wheel declares compatible ranges
for what it needs; Spark, Delta and the TensorFlow build come from the platform
(a Databricks runtime, a cluster image) or from an extra (``local``, ``cpu``,
``gpu``). The exact versions tested together live in ``constraints.txt``, which
``make`` and ``./spark-submit.sh --cluster`` install with.
"""
import os

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))

# top-level folder -> import name; every sub-package below each folder is found.
LAYOUT = {"lib": "vistarank", "udfs": "vistarank.udfs", "jobs": "vistarank.jobs", "conf": "vistarank.conf"}


def _packages() -> tuple[list[str], dict[str, str]]:
    packages, package_dir = [], {}
    for folder, name in LAYOUT.items():
        packages.append(name)
        package_dir[name] = folder
        for sub in find_packages(os.path.join(HERE, folder)):
            packages.append(f"{name}.{sub}")
    return packages, package_dir


def _stages() -> list[str]:
    """Every job module with a main(): one console script each (vistarank-<stage>)."""
    out = []
    for fname in sorted(os.listdir(os.path.join(HERE, "jobs"))):
        stem, ext = os.path.splitext(fname)
        if ext != ".py" or stem in ("__init__", "common"):
            continue
        with open(os.path.join(HERE, "jobs", fname), encoding="utf-8") as fh:
            if "\ndef main(" in fh.read():
                out.append(stem)
    return out


def _version() -> str:
    with open(os.path.join(HERE, "lib", "__init__.py"), encoding="utf-8") as fh:
        return next(line.split('"')[1] for line in fh if line.startswith("__version__"))


PACKAGES, PACKAGE_DIR = _packages()

# Ranges, not pins: the platform's versions win where they fit (constraints.txt pins the tested set).
INSTALL_REQUIRES = [
    "keras>=3.5,<4",
    "numpy>=1.26,<3",
    "pandas>=2.0,<3",  # PySpark 4 does not fully support pandas 3
    "pyarrow>=15",
    "scikit-learn>=1.3",
    "scipy>=1.11",
    "pillow>=10",
    "ImageHash>=4.3",
    "PyYAML>=6",
    "pydantic>=2.5,<3",
    "matplotlib>=3.7",
]

EXTRAS = {
    # The embedded default and spark-submit clusters without a Spark of their own.
    # Databricks runtimes and Spark images provide both: do not install this there.
    "local": ["pyspark>=4.0,<4.3", "delta-spark>=4.0,<4.5"],
    # TensorFlow: Databricks ML runtimes ship it; elsewhere pick the CPU or the GPU build.
    "cpu": ["tensorflow-cpu>=2.16,<2.22; platform_machine=='x86_64'",
            "tensorflow>=2.16,<2.22; platform_machine!='x86_64'"],
    "gpu": ["tensorflow[and-cuda]>=2.16,<2.22"],
    "dev": ["pytest", "nbclient", "nbformat", "ipykernel", "venv-pack", "build", "psutil",
            "databricks-bundles"],
    # The Horovod backend lives in a second, pinned environment (TF 2.15.1 + horovod
    # 0.28.1 built against the system cmake); see docs/operations.md. It is not an
    # extra of this environment because horovod cannot build against TF 2.21.
}

setup(
    name="vistarank",
    version=_version(),
    description="Product images to recommendations at scale, on Spark, Delta and TensorFlow",
    python_requires=">=3.11,<3.13",
    packages=PACKAGES,
    package_dir=PACKAGE_DIR,
    package_data={"vistarank.conf": ["*.yaml"]},
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    entry_points={
        "console_scripts": [f"vistarank-{s.replace('_', '-')}=vistarank.jobs.{s}:main" for s in _stages()]
        + ["vistarank-setup-jars=vistarank.jars:main"],
    },
)
