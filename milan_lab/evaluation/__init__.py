"""Evaluation of frozen encoders and classifiers: kNN, linear and dense probes, top-1, the teacher.
Functions in, numbers out; they never train the encoder."""
