"""The training jobs: pretraining, fine-tuning, linear probing and training the small CLIP teacher, each
a model, its data and a step function handed to the one loop (``milan_lab.engine.trainer``)."""
