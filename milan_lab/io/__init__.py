"""Files: reading and atomically writing weights (``weights``), run checkpoints (``checkpoints``);
the memory available to this process (``memory``)."""
