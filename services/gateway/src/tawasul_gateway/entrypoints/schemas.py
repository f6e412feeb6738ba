"""JSON Schemas of protobuf messages in their proto3 JSON form (with the proto's field names),
for the OpenAPI description: the HTTP API's bodies are the gRPC messages."""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import FieldDescriptor

# A message descriptor (the pure-Python or the upb one).
Descriptor = Any

_SCALARS: dict[int, dict[str, Any]] = {
    FieldDescriptor.TYPE_STRING: {"type": "string"},
    FieldDescriptor.TYPE_BOOL: {"type": "boolean"},
    FieldDescriptor.TYPE_BYTES: {"type": "string", "format": "byte"},
    FieldDescriptor.TYPE_DOUBLE: {"type": "number"},
    FieldDescriptor.TYPE_FLOAT: {"type": "number"},
    FieldDescriptor.TYPE_INT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_SINT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_UINT32: {"type": "integer", "format": "int64", "minimum": 0},
    FieldDescriptor.TYPE_FIXED32: {"type": "integer", "format": "int64", "minimum": 0},
    # 64-bit integers are strings in proto3 JSON.
    FieldDescriptor.TYPE_INT64: {"type": "string", "format": "int64"},
    FieldDescriptor.TYPE_SINT64: {"type": "string", "format": "int64"},
    FieldDescriptor.TYPE_SFIXED64: {"type": "string", "format": "int64"},
    FieldDescriptor.TYPE_UINT64: {"type": "string", "format": "uint64"},
    FieldDescriptor.TYPE_FIXED64: {"type": "string", "format": "uint64"},
}
_WELL_KNOWN: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?\d+(\.\d+)?s$"},
}


def ref(descriptor: Descriptor, components: dict[str, Any]) -> dict[str, Any]:
    """A $ref to the message's schema, adding it (and those it uses) to `components`."""
    name = descriptor.full_name
    if name in _WELL_KNOWN:
        return dict(_WELL_KNOWN[name])
    if name not in components:
        components[name] = {}  # placeholder: messages may refer to themselves
        components[name] = _message(descriptor, components)
    return {"$ref": f"#/components/schemas/{name}"}


def _message(descriptor: Descriptor, components: dict[str, Any]) -> dict[str, Any]:
    properties = {field.name: _field(field, components) for field in descriptor.fields}
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if descriptor.GetOptions().map_entry:
        return schema
    schema["additionalProperties"] = False
    return schema


def _single(field: FieldDescriptor, components: dict[str, Any]) -> dict[str, Any]:
    if field.message_type is not None:
        return ref(field.message_type, components)
    if field.enum_type is not None:
        return {"type": "string", "enum": [v.name for v in field.enum_type.values]}
    return dict(_SCALARS[field.type])


def _field(field: FieldDescriptor, components: dict[str, Any]) -> dict[str, Any]:
    message = field.message_type
    if message is not None and message.GetOptions().map_entry:
        value = message.fields_by_name["value"]
        return {"type": "object", "additionalProperties": _single(value, components)}
    if field.is_repeated:
        return {"type": "array", "items": _single(field, components)}
    return _single(field, components)
