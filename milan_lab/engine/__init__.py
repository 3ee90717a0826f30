"""The one training loop: device and DDP, precision, accumulation, resume, checkpoints, metrics.
Jobs hand it a model, batches and a loss function; models know none of it."""
