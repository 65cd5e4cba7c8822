"""An untouched exercise notebook runs top to bottom: every check cell says "not implemented yet"."""

import nbformat
from nbclient import NotebookClient

from tests.conftest import ROOT


def test_untouched_exercise_notebook_reports_not_implemented():
    nb = nbformat.read(ROOT / "exercises" / "00_foundations.ipynb", as_version=4)
    NotebookClient(nb, timeout=120, allow_errors=True, resources={"metadata": {"path": str(ROOT)}}).execute()
    check_outputs = [
        "".join(o.get("text", "") for o in c.outputs)
        for c in nb.cells
        if c.cell_type == "code" and "check(" in c.source
    ]
    assert len(check_outputs) == 4
    assert all("not implemented yet" in out for out in check_outputs), check_outputs
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert [e.ename for e in errors] == ["NotImplementedError"]  # only the final cell that uses train_step
