"""Files: reading and atomically writing weights (``weights``), run checkpoints (``checkpoints``)."""
