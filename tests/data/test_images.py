"""The image reader (data/images.py): EXIF orientation applied by every reader (files, class folders, caption
folders, the explorer's view), and a missing file is BadImage naming it."""
import numpy as np
import pytest
from PIL import Image

from milan_lab.errors import BadImage


def test_exif_orientation_is_applied_everywhere(tmp_path):
    from milan_lab.data.datasets import CaptionPairs, ClassFolder
    from milan_lab.data.images import load_image
    from milan_lab.viz.panels import Explorer
    img = Image.new("RGB", (80, 40), (255, 0, 0))
    img.paste((0, 0, 255), (0, 0, 40, 40))  # blue on the left half of the stored pixels
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was turned: rotate 90 degrees clockwise to view
    (tmp_path / "cls" / "a").mkdir(parents=True)
    img.save(tmp_path / "cls" / "a" / "portrait.jpg", exif=exif.tobytes(), quality=95)
    path = tmp_path / "cls" / "a" / "portrait.jpg"
    upright = load_image(str(path))
    assert upright.size == (40, 80)
    assert np.asarray(upright)[2, 20, 2] > 200  # blue is now at the top
    assert ClassFolder(str(tmp_path / "cls"))[0][0].size == (40, 80)
    (tmp_path / "cls" / "a" / "captions.csv").write_text("image,caption\nportrait.jpg,a red square\n")
    assert CaptionPairs(str(tmp_path / "cls" / "a"))[0][0].size == (40, 80)
    shown, _ = Explorer._views(str(path), 64)
    assert shown[5, 128, 2] > 0.8 and shown[250, 128, 0] > 0.8  # app's view: blue on top, red below
    assert shown[128, 5, 0] > 0.8 or shown[128, 5, 2] < 0.5  # (sideways, blue would be on the left)


def test_a_missing_file_is_badimage_naming_it():
    from milan_lab.data.images import load_image
    with pytest.raises(BadImage, match="/nonexistent/x.png"):
        load_image("/nonexistent/x.png")
