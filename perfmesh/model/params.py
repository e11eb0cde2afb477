"""Typed parameter schemas for optimization strategies.

A strategy declares its parameters as ``{name: Param(...)}``; every config that reaches
it (from a library caller or from a remote command) goes through ``validate_params``
first. Anything that does not match the schema is refused with an
``InvalidParameterError`` that names the key, the value and what was expected:

- unknown keys and missing required keys;
- wrong types (``bool`` is never accepted where an ``int`` or ``float`` is expected);
- numbers outside ``min``/``max``, non-finite floats, values not in ``choices``;
- strings longer than ``max_len``, containing shell metacharacters
  (``; | & $ ` < > \\``, quotes, newlines, NUL) or looking like a path traversal
  (containing ``..`` or starting with ``/``);
- lists longer than ``max_len`` or with a bad element.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Mapping

from ..errors import ConfigError, InvalidParameterError

#: Characters a parameter string may never contain.
SHELL_METACHARACTERS = frozenset(";|&$`<>\\\n\r\"'\0")

#: The types a Param may declare, by the name used in ``to_dict``.
PARAM_TYPES: dict[str, Any] = {
    "int": int,
    "float": float,
    "str": str,
    "bool": bool,
    "list[int]": list[int],
}

_KEY_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_REPR_LIMIT = 80


def _show(value: Any) -> str:
    """A bounded repr of a (possibly hostile) value for an error message."""
    text = repr(value)
    return text if len(text) <= _REPR_LIMIT else text[: _REPR_LIMIT - 3] + "..."


def _refuse(key: str, value: Any, expected: str) -> InvalidParameterError:
    return InvalidParameterError(f"parameter {key!r}: got {_show(value)}; expected {expected}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_safe_string(key: str, value: str, max_len: int) -> str:
    """Return ``value`` if it is short and free of shell metacharacters and traversal."""
    if len(value) > max_len:
        raise _refuse(key, value, f"a string of at most {max_len} characters")
    bad = sorted(SHELL_METACHARACTERS.intersection(value))
    if bad:
        raise _refuse(key, value, f"a string without shell metacharacters (found {bad!r})")
    if ".." in value or value.startswith("/"):
        raise _refuse(key, value, "a string without path traversal ('..' or a leading '/')")
    return value


@dataclass(frozen=True)
class Param:
    """One typed parameter: its type, whether it is required, default and limits.

    ``min``/``max`` bound numbers and the elements of ``list[int]``; ``max_len`` bounds
    the length of strings and lists; ``choices`` restricts scalars (or list elements)
    to an explicit set.
    """

    type: Any
    required: bool = False
    default: Any = None
    min: float | None = None
    max: float | None = None
    choices: tuple[Any, ...] | None = None
    max_len: int = 64
    description: str = ""

    def __post_init__(self) -> None:
        if self.type_name is None:
            raise ConfigError(
                f"Param type {self.type!r} is not supported; expected one of {sorted(PARAM_TYPES)}"
            )
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ConfigError(f"Param min {self.min!r} is greater than max {self.max!r}")
        if self.choices is not None:
            object.__setattr__(self, "choices", tuple(self.choices))

    @property
    def type_name(self) -> str | None:
        for name, typ in PARAM_TYPES.items():
            if self.type is typ or (name == "list[int]" and self.type == typ):
                return name
        return None

    def expectation(self) -> str:
        """What a valid value looks like, in words (used in error messages)."""
        words = {"int": "an integer", "float": "a finite number", "str": "a string",
                 "bool": "true or false", "list[int]": "a list of integers"}[self.type_name]
        if self.min is not None and self.max is not None:
            words += f" between {self.min} and {self.max}"
        elif self.min is not None:
            words += f" >= {self.min}"
        elif self.max is not None:
            words += f" <= {self.max}"
        if self.choices is not None:
            words += f" from {list(self.choices)}"
        return words

    def _check_range(self, key: str, shown: Any, number: float) -> None:
        if (self.min is not None and number < self.min) or (
            self.max is not None and number > self.max
        ):
            raise _refuse(key, shown, self.expectation())

    def _check_choice(self, key: str, shown: Any, value: Any) -> None:
        if self.choices is not None and value not in self.choices:
            raise _refuse(key, shown, self.expectation())

    def validate(self, key: str, value: Any) -> Any:
        """Return the validated (normalised) value or raise InvalidParameterError."""
        kind = self.type_name
        if kind == "bool":
            if not isinstance(value, bool):
                raise _refuse(key, value, self.expectation())
        elif kind == "int":
            if not _is_int(value):
                raise _refuse(key, value, self.expectation())
            self._check_range(key, value, value)
        elif kind == "float":
            if not (_is_int(value) or isinstance(value, float)) or not math.isfinite(value):
                raise _refuse(key, value, self.expectation())
            value = float(value)
            self._check_range(key, value, value)
        elif kind == "str":
            if not isinstance(value, str):
                raise _refuse(key, value, self.expectation())
            check_safe_string(key, value, self.max_len)
        else:  # list[int]
            if not isinstance(value, (list, tuple)) or len(value) > self.max_len:
                raise _refuse(
                    key, value, f"{self.expectation()} with at most {self.max_len} elements"
                )
            for item in value:
                if not _is_int(item):
                    raise _refuse(key, value, self.expectation())
                self._check_range(key, value, item)
                self._check_choice(key, value, item)
            return list(value)
        self._check_choice(key, value, value)
        return value

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description of this parameter."""
        return {
            "type": self.type_name,
            "required": self.required,
            "default": list(self.default) if isinstance(self.default, tuple) else self.default,
            "min": self.min,
            "max": self.max,
            "choices": None if self.choices is None else list(self.choices),
            "max_len": self.max_len,
            "description": self.description,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Param":
        type_name = data.get("type")
        if type_name not in PARAM_TYPES:
            raise ConfigError(
                f"Param type {type_name!r} is not supported; expected one of {sorted(PARAM_TYPES)}"
            )
        choices = data.get("choices")
        return cls(
            type=PARAM_TYPES[type_name],
            required=bool(data.get("required", False)),
            default=data.get("default"),
            min=data.get("min"),
            max=data.get("max"),
            choices=None if choices is None else tuple(choices),
            max_len=int(data.get("max_len", 64)),
            description=str(data.get("description", "")),
        )


def _check_config_mapping(config: Any) -> Mapping[str, Any]:
    if config is None:
        return {}
    if not isinstance(config, Mapping):
        raise InvalidParameterError(
            f"parameters: got {_show(config)}; expected a mapping of parameter name to value"
        )
    return config


def validate_params(schema: Mapping[str, Param], config: Mapping[str, Any] | None) -> dict:
    """Validate ``config`` against ``schema``; return every schema key with its value.

    Keys missing from ``config`` take the Param's default (``None`` when it has none).
    """
    config = _check_config_mapping(config)
    for key in config:
        if key not in schema:
            allowed = ", ".join(sorted(schema)) or "none"
            raise InvalidParameterError(
                f"parameter {_show(key)} is not known; expected one of: {allowed}"
            )
    validated: dict[str, Any] = {}
    for key, param in schema.items():
        if key in config:
            validated[key] = param.validate(key, config[key])
        elif param.required:
            raise InvalidParameterError(
                f"parameter {key!r} is required; expected {param.expectation()}"
            )
        else:
            default = param.default
            validated[key] = list(default) if isinstance(default, tuple) else default
    return validated


def _validate_free_scalar(key: str, value: Any, max_len: int) -> Any:
    if value is None or isinstance(value, bool) or _is_int(value):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _refuse(key, value, "a finite number")
        return value
    if isinstance(value, str):
        return check_safe_string(key, value, max_len)
    raise _refuse(key, value, "null, a boolean, a number or a string")


def validate_free_params(config: Mapping[str, Any] | None, *, max_len: int = 64) -> dict:
    """Validate a config for a strategy registered without a schema.

    Keys must be short plain names; values must be null, booleans, finite numbers,
    safe strings, or lists (at most ``max_len`` long) of those. Nothing else passes.
    """
    config = _check_config_mapping(config)
    validated: dict[str, Any] = {}
    for key, value in config.items():
        if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
            raise InvalidParameterError(
                f"parameter name {_show(key)} is not valid; expected 1-64 characters "
                "from [A-Za-z0-9_.-]"
            )
        if isinstance(value, (list, tuple)):
            if len(value) > max_len:
                raise _refuse(key, value, f"a list of at most {max_len} elements")
            validated[key] = [_validate_free_scalar(key, item, max_len) for item in value]
        else:
            validated[key] = _validate_free_scalar(key, value, max_len)
    return validated
