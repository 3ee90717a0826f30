"""The curves figure (engine/loggers.py) leaves matplotlib's backend as it found it, and a logger that keeps
files gets the figures of a run's sub-folders too, but not a logger's own media."""
import matplotlib
from PIL import Image


def test_curves_keep_the_backend_and_subfolder_figures_are_uploaded(tmp_path):
    from milan_lab.engine import loggers
    history = [{"step": i, "loss": 1.0 / (i + 1), "lr": 1e-3} for i in range(4)] + [{"step": 3, "knn_acc": 0.4}]
    before = matplotlib.get_backend()
    try:
        matplotlib.use("svg")
        loggers.write_curves(tmp_path / "curves.png", history)
        assert matplotlib.get_backend() == "svg"
    finally:
        matplotlib.use(before)
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"

    (tmp_path / "figures").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "figures" / "masks.png")
    (tmp_path / "wandb" / "media").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(tmp_path / "wandb" / "media" / "logged.png")

    class Keeper:
        keeps_files = True

        def finish(self, config, summary, files):
            self.files = files

    keeper = Keeper()
    loggers.finish_loggers([keeper], tmp_path, {}, {}, history)
    names = {loggers.artefact_name(p, tmp_path) for p in keeper.files}
    assert {"curves.png", "figures/masks.png"} <= names and "wandb/media/logged.png" not in names
