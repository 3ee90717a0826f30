"""Data: offline captioned scenes, real-data loaders, transforms."""
from milan_lab.data.scenes import SHAPES, make_scene  # noqa: F401
