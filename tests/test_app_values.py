"""A value outside a control's choices or range, sent by an API client, is one `user error:` line in
the app's log (naming the control) and a clear message to the client; never a traceback."""
import logging
import socket

import pytest
from PIL import Image

# (endpoint, arguments after the image, the control the message must name)
BAD_VALUES = [
    ("/attention", (0, "7"), "teacher head"),
    ("/attention", (99, "mean"), "teacher layer"),
    ("/attention", (-1, "mean"), "teacher layer"),  # the slider has exactly one position per layer
    ("/student_attention", ("9",), "student head"),
    ("/masks", ("bogus", "random", 0.5, 0), "sampler A"),
    ("/masks", ("semantic", "random", 3.0, 0), "mask ratio"),
    ("/masks", ("semantic", "random", "abc", 0), "mask ratio"),
    ("/masks", ("semantic", "random", 0.5, 10 ** 20), "seed"),
    ("/reconstruct", ("sideways", 0.75, 0, "a star"), "sampler"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url():
    from milan_lab.app import launch
    port = _free_port()
    demo = launch(port=port, block=False)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    from milan_lab.data.scenes import make_scene
    path = tmp_path_factory.mktemp("img") / "scene.png"
    Image.fromarray(make_scene(0, "test", 1, 128)[0]).save(path)
    return path


def test_values_outside_the_controls_are_one_user_error_line(app_url, scene, caplog, capfd):
    from gradio_client import Client, handle_file
    client = Client(app_url, verbose=False)
    img = handle_file(str(scene))
    for endpoint, args, control in BAD_VALUES:
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="milan_lab.app"):
            with pytest.raises(Exception) as info:
                client.predict(img, *args, api_name=endpoint)
        assert str(info.value).lstrip("'\"").startswith(f"{control}:"), (endpoint, args, str(info.value))
        lines = [r.getMessage() for r in caplog.records if r.name == "milan_lab.app"]
        assert len(lines) == 1 and lines[0].startswith(f"user error: {control}:"), (endpoint, args, lines)
    err = capfd.readouterr().err
    assert "Traceback" not in err and "not in the list of choices" not in err, err[-3000:]
    a, b, note = client.predict(img, "semantic", "random", 0.5, 3, api_name="/masks")  # good values still work
    assert "seed 3" in note
