"""A notebook's ``image`` parameter names an example scene only among the example scenes (those with a known
ground truth); scene_N beyond them is one BadImage line naming the parameter and the scenes there are."""
import pytest

from milan_lab.errors import BadImage
from milan_lab.tools import notebook
from milan_lab.viz.panels import DISPLAY, EXAMPLE_SCENES, example_scene_labels


def test_the_last_example_scene_is_one_with_a_known_truth():
    picture, spec = notebook.notebook_image(f"scene_{len(EXAMPLE_SCENES) - 1}")
    assert picture.shape == (DISPLAY, DISPLAY, 3) and spec is not None
    assert example_scene_labels(picture, 32) is not None


@pytest.mark.parametrize("name", [f"scene_{len(EXAMPLE_SCENES)}", "scene_99"])
def test_a_scene_past_the_examples_is_refused_in_one_line(name):
    with pytest.raises(BadImage, match=f"'image'.*{name}") as err:
        notebook.notebook_image(name)
    assert f"scene_{len(EXAMPLE_SCENES) - 1}" in str(err.value) and "\n" not in str(err.value)
