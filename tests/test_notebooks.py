"""The analyst notebooks run top to bottom on the tiny world.

They share one kernel, so Spark starts once for the three; each notebook begins with
``%reset -f``, so none can lean on another's variables."""
import glob
import os
import sys

import nbformat
import pytest
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync
from nbclient import NotebookClient

pytestmark = pytest.mark.notebooks

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = sorted(glob.glob(os.path.join(ROOT, "notebooks", "*.ipynb")))
# what each notebook must show (a table or figure its analysts read)
EXPECT = {"01_explore_lakehouse.ipynb": "unique_images", "02_themes.ipynb": "attractiveness",
          "03_recommendations.ipynb": "top_engine"}


@pytest.fixture(scope="module")
def kernel(recommended, tmp_path_factory):
    """One Python kernel for the notebooks, with the tiny world's lakehouse in its environment."""
    env = dict(os.environ, VISTARANK_LAKEHOUSE=recommended.lakehouse.root, PYSPARK_PYTHON=sys.executable)
    km = AsyncKernelManager(kernel_name="python3")
    run_sync(km.start_kernel)(cwd=str(tmp_path_factory.mktemp("notebooks")), env=env)
    try:
        yield km
    finally:
        run_sync(km.shutdown_kernel)(now=True)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_runs(path, kernel):
    nb = nbformat.read(path, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell("%reset -f"))
    client = NotebookClient(nb, km=kernel, timeout=600)
    try:
        client.execute()
    finally:
        if client.kc is not None:
            client.kc.stop_channels()
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert EXPECT[os.path.basename(path)] in "".join(
        str(o.get("data", "")) + o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "lakehouse" in outputs
