"""Tools over the jobs and evaluations: model info and FLOPs, the step benchmark, the ablation studio,
the notebooks' helpers."""
