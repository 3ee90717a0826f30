"""YAML: config files, presets and the values of ``key=value`` overrides are all read by :func:`parse_yaml`."""
from __future__ import annotations

from pathlib import Path

import yaml

from milan_lab.config.options import _shown
from milan_lab.errors import ConfigError

MAX_YAML_CHARS = 1 << 20  # a config file is a few hundred characters; one of megabytes is not a config file
MAX_YAML_DEPTH = 16       # options nest two or three levels deep (section, model, option)


class _Refused(yaml.MarkedYAMLError):
    """YAML that is well formed but not accepted in a config (its ``problem`` says why)."""


class _ConfigLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader that refuses aliases (``*name``) and nesting deeper than MAX_YAML_DEPTH.

    An alias makes the loaded value a graph that shares nodes: ten lines of nested aliases ("billion
    laughs") stand for billions of values as soon as anything walks the result (flattening sections,
    printing a bad value). The composer meets each alias as a single event before anything is expanded,
    so refusing it there keeps reading linear in the text's size. The composer recurses once per level
    of nesting, hence the bound on depth."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            raise _Refused(problem="YAML aliases (*name) are not accepted in config files: write the value out",
                           problem_mark=self.peek_event().start_mark)
        self.config_depth = getattr(self, "config_depth", 0) + 1
        try:
            if self.config_depth > MAX_YAML_DEPTH:
                raise _Refused(problem=f"nested more than {MAX_YAML_DEPTH} levels deep",
                               problem_mark=self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self.config_depth -= 1


def parse_yaml(text: str, where: str, lines: bool = True):
    """``text`` read as YAML (no aliases, bounded size and depth: :class:`_ConfigLoader`); any problem
    is one :class:`ConfigError` line starting with ``where`` (a file), with ``:line:column`` if ``lines``."""
    if len(text) > MAX_YAML_CHARS:
        raise ConfigError(f"{where}: {len(text):,} characters, more than a config holds (at most {MAX_YAML_CHARS:,})")
    try:
        return yaml.load(text, Loader=_ConfigLoader)  # noqa: S506 -- a SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f"{where}:{mark.line + 1}:{mark.column + 1}" if lines and mark is not None else where
        problem = getattr(e, "problem", None) or e
        if isinstance(e, _Refused):
            raise ConfigError(f"{at}: {problem}") from None
        if not lines:  # one value of a key=value override: show it
            raise ConfigError(f"{at}: {_shown(text)!r} cannot be parsed as YAML ({problem})") from None
        raise ConfigError(f"{at}: YAML syntax error: {problem}") from None


def load_yaml(path: str | Path) -> dict:
    """A YAML file of options; a syntax error is reported as file:line:column in one line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    if path.stat().st_size > MAX_YAML_CHARS * 4:  # refused before reading: at most 4 bytes a character
        raise ConfigError(f"{path}: {path.stat().st_size:,} bytes, more than a config holds")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not a text (UTF-8) file: {e.reason} at byte {e.start}") from None
    loaded = parse_yaml(text, str(path))
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys, got a {type(loaded).__name__}")
    return loaded
