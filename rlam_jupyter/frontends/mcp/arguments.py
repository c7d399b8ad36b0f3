"""The arguments of a run tool checked against its own input schema before anything is
read or run: the object shape, required and unknown names, types, enums and bounds, each
refusal naming the argument, what was given and what is expected. (The SDK's low-level
server does not validate arguments; the run tools' schemas are small and flat.)"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rlam_jupyter.errors import RlamError

JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


def check_arguments(tool: str, schema: Mapping[str, Any], arguments: Any) -> dict[str, Any]:
    """``arguments`` as a dict, or an :class:`RlamError` naming the first problem."""
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        raise RlamError(
            f"{tool}: the arguments must be a JSON object, got {type(arguments).__name__}"
        )
    properties: Mapping[str, Any] = schema.get("properties", {})
    unknown = sorted(set(arguments) - set(properties))
    if unknown:
        raise RlamError(
            f"{tool}: unknown argument {unknown[0]!r}; expected {_signature(tool, schema)}"
        )
    for name in schema.get("required", ()):
        if name not in arguments:
            raise RlamError(
                f"{tool}: the argument {name!r} is required; expected {_signature(tool, schema)}"
            )
    for name, value in arguments.items():
        _check_value(f"{tool}: {name}", properties[name], value)
    return dict(arguments)


def _check_value(where: str, schema: Mapping[str, Any], value: Any) -> None:
    types = schema.get("type")
    allowed = [types] if isinstance(types, str) else list(types or JSON_TYPES)
    if not any(_is_type(value, t) for t in allowed):
        raise RlamError(f"{where}={value!r} is not {' or '.join(allowed)}")
    if "enum" in schema and value not in schema["enum"]:
        raise RlamError(f"{where}={value!r} is not one of {schema['enum']}")
    if "minimum" in schema and isinstance(value, int) and value < schema["minimum"]:
        raise RlamError(f"{where}={value!r} must be at least {schema['minimum']}")
    if "maximum" in schema and isinstance(value, int) and value > schema["maximum"]:
        raise RlamError(f"{where}={value!r} must be at most {schema['maximum']}")
    if isinstance(value, list) and "items" in schema:
        for item in value:
            _check_value(where, schema["items"], item)


def _is_type(value: Any, json_type: str) -> bool:
    if isinstance(value, bool):  # bool is an int in Python, never in JSON
        return json_type == "boolean"
    return isinstance(value, JSON_TYPES[json_type])


def _signature(tool: str, schema: Mapping[str, Any]) -> str:
    required = set(schema.get("required", ()))
    names = [n if n in required else f"{n}?" for n in schema.get("properties", {})]
    return f"{tool}({', '.join(names)})"
