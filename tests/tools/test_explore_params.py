"""The explore notebook's paint, filled-in and timeline parameters are checked up front, naming the parameter."""
import nbformat
import pytest

from milan_lab.errors import ConfigError
from milan_lab.tools import notebook
from tests.helpers import ROOT


def _defaults() -> dict:
    cell = next(c for c in nbformat.read(ROOT / "notebooks" / "explore.ipynb", as_version=4).cells if c.cell_type == "code")
    values = {}
    exec(compile(cell.source, "explore", "exec"), {}, values)
    return values


@pytest.mark.parametrize("name, value", [("paint_preset", "hide the object"), ("bank_scenes", 0), ("timeline_scenes", 0),
                                         ("timeline_knn_train", 2.5)])
def test_a_bad_paint_or_timeline_parameter_is_refused_naming_it(name, value):
    notebook.check_parameters("explore", **_defaults())  # the defaults pass
    with pytest.raises(ConfigError, match=name):
        notebook.check_parameters("explore", **{**_defaults(), name: value})
