"""The analyst notebooks run top to bottom on the tiny world."""
import glob
import os
import sys

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = sorted(glob.glob(os.path.join(ROOT, "notebooks", "*.ipynb")))
# what each notebook must show (a table or figure its analysts read)
EXPECT = {"01_explore_lakehouse.ipynb": "unique_images", "02_themes.ipynb": "attractiveness",
          "03_recommendations.ipynb": "top_engine"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_runs(path, spark, recommended, monkeypatch, tmp_path):
    monkeypatch.setenv("VISTARANK_LAKEHOUSE", recommended.lakehouse.root)
    monkeypatch.setenv("PYSPARK_PYTHON", sys.executable)
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert EXPECT[os.path.basename(path)] in "".join(
        str(o.get("data", "")) + o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "lakehouse" in outputs
