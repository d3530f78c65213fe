"""Reading a vision config: YAML onto :class:`~.schema.VisionConfig`, with ``--set`` overrides.

:func:`from_dict` builds a section's dataclass from a mapping, converting and checking each value
against the field's annotation (recursively); an unknown key or a value of the wrong type is one
line naming the dotted key. A section's ``ALIASES`` (older name -> field name) are accepted.
:func:`load_config` reads a file and applies ``section.key=value`` overrides
(:func:`apply_override`).
Numbers YAML leaves as strings (``1e-3``, which YAML 1.1 reads as a string) are read as numbers.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

from scm.validation import InvalidParameterError

from .schema import VisionConfig

_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def _convert(value: Any, annotation: Any, key: str) -> Any:
    """Check ``value`` against ``annotation`` (recursively) and return it converted."""
    origin = get_origin(annotation)
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise InvalidParameterError(f"{key}: expected a mapping, got {value!r}")
        return from_dict(annotation, value, key)
    if origin in (typing.Union, types.UnionType):
        options = get_args(annotation)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(value, option, key)
            except InvalidParameterError as error:
                errors.append(str(error))
        raise InvalidParameterError(
            f"{key}: expected {' or '.join(_type_name(o) for o in options)}, got {value!r}"
        )
    if origin is Literal:
        choices = get_args(annotation)
        if value not in choices:
            raise InvalidParameterError(f"{key}: expected one of {list(choices)}, got {value!r}")
        return value
    if origin is list:
        (item_type,) = get_args(annotation)
        if not isinstance(value, list):
            raise InvalidParameterError(f"{key}: expected a list, got {value!r}")
        return [_convert(item, item_type, f"{key}[{i}]") for i, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise InvalidParameterError(f"{key}: expected a mapping, got {value!r}")
        key_type, value_type = get_args(annotation)
        return {
            _convert(k, key_type, f"{key}.<key>"): _convert(v, value_type, f"{key}.{k}")
            for k, v in value.items()
        }
    if annotation is Any:
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise InvalidParameterError(f"{key}: expected true or false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidParameterError(f"{key}: expected an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
            return float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidParameterError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise InvalidParameterError(f"{key}: expected a string, got {value!r}")
        return value
    raise InvalidParameterError(f"{key}: unsupported annotation {annotation!r}")


def from_dict(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    """Build dataclass ``cls`` from ``data``; unknown keys and wrong types name the dotted key.
    A class's ``ALIASES`` (older name -> field name) are accepted for its fields."""
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    aliases: dict[str, str] = getattr(cls, "ALIASES", {})
    for key in data:
        if aliases.get(key, key) not in names:
            dotted = f"{prefix}.{key}" if prefix else str(key)
            raise InvalidParameterError(f"{dotted}: unknown key; expected one of {sorted(names)}")
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}.{key}" if prefix else key
        name = aliases.get(key, key)
        if name in kwargs:
            raise InvalidParameterError(
                f"{dotted}: {key!r} and {name!r} name the same setting; give only {name!r}"
            )
        kwargs[name] = _convert(value, hints[name], dotted)
    return cls(**kwargs)


def load_config(path: str | Path, overrides: list[str] | None = None) -> VisionConfig:
    """Read a YAML config and apply ``section.key=value`` overrides (values parsed as YAML)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config: no such file {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise InvalidParameterError(
            f"config {path}: not valid YAML ({_yaml_problem(error)})"
        ) from None
    if not isinstance(data, dict):
        raise InvalidParameterError(f"config {path}: expected a mapping at the top level")
    for override in overrides or []:
        apply_override(data, override)
    return from_dict(VisionConfig, data)


def _yaml_problem(error: Exception) -> str:
    """A YAML parse error on one line: what is wrong and where (line and column, from 1)."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return " ".join(f"{problem}{where}".split())


def apply_override(data: dict[str, Any], override: str) -> None:
    """Set ``data[a][b] = value`` for an override ``"a.b=value"`` (value parsed as YAML).

    An older name of a field (its section's ``ALIASES``) sets the field, replacing the value the
    file gives under either name."""
    import yaml

    if "=" not in override:
        raise InvalidParameterError(f"--set: expected key=value, got {override!r}")
    dotted, raw = override.split("=", 1)
    keys = dotted.strip().split(".")
    target = data
    section: Any = VisionConfig
    for key in keys[:-1]:
        target = target.setdefault(key, {})
        if not isinstance(target, dict):
            raise InvalidParameterError(f"--set {dotted}: {key} is not a section")
        field_types = get_type_hints(section) if dataclasses.is_dataclass(section) else {}
        section = field_types.get(key)
    aliases: dict[str, str] = getattr(section, "ALIASES", {})
    name = aliases.get(keys[-1], keys[-1])
    for alias in [alias for alias, field_name in aliases.items() if field_name == name]:
        target.pop(alias, None)
    try:
        target[name] = yaml.safe_load(raw)
    except yaml.YAMLError as error:
        raise InvalidParameterError(
            f"--set {dotted}: the value is not valid YAML ({_yaml_problem(error)})"
        ) from None
