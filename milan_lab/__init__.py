"""milan-lab: a research workbench for MILAN (masked image pretraining on CLIP targets).

    from milan_lab import get_model, inference_model, list_models, load_teacher
"""
__version__ = "0.6.5"


def __getattr__(name):  # lazy: `import milan_lab` stays cheap for the CLI's --help
    if name in ("get_model", "inference_model", "list_models"):
        from milan_lab import zoo
        return getattr(zoo, name)
    if name == "load_teacher":
        from milan_lab.factory.teachers import load_teacher
        return load_teacher
    if name in ("get_config", "PretrainConfig", "FinetuneConfig", "LinearProbeConfig", "ModelConfig"):
        from milan_lab import config
        return getattr(config, name)
    raise AttributeError(f"module 'milan_lab' has no attribute {name!r}")
