"""The one way in: create a model from a config, load one from a file, load a teacher, export.

    from milan_lab.factory import create_model, load_model, load_teacher, export_timm
"""
from milan_lab.factory.models import create_model, export_timm, load_encoder, load_encoder_weights, load_model
from milan_lab.factory.teachers import load_teacher, teacher_architecture

__all__ = ["create_model", "load_model", "load_encoder", "load_encoder_weights", "load_teacher", "teacher_architecture",
           "export_timm"]
