"""vistarank: images to recommendations, on Spark.

One importable package, ``vistarank``, assembled from the design card's layout:
``lib/`` is ``vistarank``, ``udfs/`` is ``vistarank.udfs``, ``jobs/`` is
``vistarank.jobs`` and ``conf/`` ships as ``vistarank.conf`` (package data), so a
wheel carries everything an executor or a Databricks wheel task needs.
"""
from setuptools import setup

STAGES = [
    "generate_world",
    "ingest_images",
    "pretrain_scene_model",
    "label_images",
    "train_head",
    "fit_themes",
    "build_candidates",
    "train_reranker",
    "recommend",
    "pipeline",
]

# Versions measured together on Python 3.11 / Java 17 (November 2026); see docs/stack.md.
INSTALL_REQUIRES = [
    "pyspark==4.2.0",
    "delta-spark==4.4.0",  # 4.4.1's jars are not on Maven Central; 4.4.0 declares pyspark<=4.2.0
    "tensorflow-cpu==2.21.0; platform_machine=='x86_64'",
    "tensorflow==2.21.0; platform_machine!='x86_64'",
    "keras==3.15.1",
    "numpy==2.4.6",
    "pandas==2.3.3",  # PySpark 4.2 does not fully support pandas 3
    "pyarrow==26.0.1",
    "scikit-learn==1.9.1",
    "scipy==1.17.1",
    "pillow==13.0.0",
    "ImageHash==4.3.2",
    "PyYAML==6.0.3",
    "pydantic==2.14.3",
    "matplotlib==3.11.2",
]

EXTRAS = {
    # GPU executors: replaces the CPU build (pip uninstall tensorflow-cpu first).
    "gpu": ["tensorflow[and-cuda]==2.21.0"],
    "dev": [
        "pytest==9.2.0",
        "nbclient==0.11.0",
        "nbformat==5.11.1",
        "ipykernel==7.4.0",
        "venv-pack==0.2.0",
        "build==1.6.1",
        "psutil==7.2.2",
    ],
    # The Horovod backend lives in a second, pinned environment (TF 2.15.1 + horovod
    # 0.28.1 built against the system cmake); see docs/operations.md. It is not an
    # extra of this environment because horovod cannot build against TF 2.21.
}

setup(
    name="vistarank",
    version="0.1.0",
    description="Product images to recommendations at scale, on Spark, Delta and TensorFlow",
    python_requires=">=3.11,<3.12",
    packages=["vistarank", "vistarank.world", "vistarank.vision", "vistarank.udfs",
              "vistarank.jobs", "vistarank.conf"],
    package_dir={
        "vistarank": "lib",
        "vistarank.udfs": "udfs",
        "vistarank.jobs": "jobs",
        "vistarank.conf": "conf",
    },
    package_data={"vistarank.conf": ["*.yaml"]},
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    entry_points={
        "console_scripts": [f"vistarank-{s.replace('_', '-')}=vistarank.jobs.{s}:main" for s in STAGES]
        + ["vistarank-setup-jars=vistarank.jars:main", "vistarank-gradcam=vistarank.jobs.gradcam:main"],
    },
)
