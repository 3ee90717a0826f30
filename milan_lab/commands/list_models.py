"""``milan-lab list-models``: the models ``get_model`` knows."""
from __future__ import annotations


def add_parsers(sub) -> None:
    s = sub.add_parser("list-models", help="models known to get_model")
    s.set_defaults(run=run)


def run(args) -> None:
    from milan_lab.zoo import describe_model, format_model, list_models
    print("\n".join(format_model(describe_model(name)) for name in list_models()))
