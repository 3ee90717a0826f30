"""Training engines: the loop, precision, schedules, logging, checkpoints. Models know none of it."""
