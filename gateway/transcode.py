"""HTTP request -> gRPC request message, and gRPC response -> JSON, for one route.

Hand-written: the google.api.http binding rules (path variables, `body`, query parameters for
the remaining fields, `response_body`) have no maintained Python implementation. Everything JSON
goes through `google.protobuf.json_format`, so values follow the proto3 JSON mapping exactly.

Request: the body is parsed first (`body: "*"` -> the whole message, `body: "f"` -> field `f`,
no body -> none allowed), then path variables and query parameters are merged in; a path
variable wins over the same field in a `body: "*"` object. Query parameters may name only fields
bound neither by the path nor by the body (`a.b=1` for nested fields, `x=1&x=2` for repeated
ones, enums by name or number, bools as true/false/1/0, 64-bit ints, and the well-known types
with a JSON string form: Timestamp, Duration, FieldMask, wrappers). JSON accepts lowerCamel and
original field names. Anything unknown, malformed, duplicated or out of range is a TranscodeError
(HTTP 400): a typo never silently drops data.

Response: proto3 JSON -- lowerCamel names, 64-bit integers as strings, enums as names, bytes as
base64, well-known types in their JSON forms. Fields at their default value (0, "", false, empty
list, unset message) are omitted, as the mapping allows; clients treat absent as default.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any
from urllib.parse import parse_qsl

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

from gateway.routes import Route

__all__ = ["TranscodeError", "Transcoder", "dumps", "loads_strict", "parse_into"]

MAX_QUERY_PARAMS = 1000
_MAX_DEPTH = 64
_CPP_MESSAGE = FieldDescriptor.CPPTYPE_MESSAGE
_CPP_BOOL = FieldDescriptor.CPPTYPE_BOOL
_CPP_ENUM = FieldDescriptor.CPPTYPE_ENUM
# Well-known message types whose JSON form is a scalar, so a query parameter can set them.
_SCALAR_WKT = frozenset(
    f"google.protobuf.{n}"
    for n in (
        "Timestamp", "Duration", "FieldMask", "DoubleValue", "FloatValue", "Int64Value",
        "UInt64Value", "Int32Value", "UInt32Value", "BoolValue", "StringValue", "BytesValue",
    )
)
_NON_OBJECT_WKT = _SCALAR_WKT | {"google.protobuf.Value", "google.protobuf.ListValue"}
_INTEGER = re.compile(r"-?[0-9]+")
_PARSE_ERROR_PATH = re.compile(r' at "?([A-Za-z_][\w.\[\]]*?)"?\.?$')
_FAILED_FIELD = re.compile(r"Failed to parse (\S+) field: ")
_NO_FIELD = re.compile(r'has no field named "([^"]*)" at "([^"]*)"')


class TranscodeError(Exception):
    """A client mistake in the request (maps to HTTP 400, or 415 for the content type)."""

    def __init__(self, reason: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.field = field


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


class Transcoder:
    """Precomputed (at startup) conversion for one route; cheap per request."""

    def __init__(self, route: Route) -> None:
        method = route.method
        self.request_class = GetMessageClass(method.input_type)
        self.response_class = GetMessageClass(method.output_type)
        where = f"{method.full_name} ({route.http_method} {route.template})"
        request = method.input_type

        self.path_fields: dict[str, tuple[FieldDescriptor, ...]] = {}
        bound: set[tuple[str, ...]] = set()
        for var in route.template.variables:
            fields = _resolve_names(request, var.field_path, where)
            leaf = fields[-1]
            if leaf.is_repeated or (
                leaf.cpp_type == _CPP_MESSAGE and leaf.message_type.full_name not in _SCALAR_WKT
            ):
                raise ValueError(f"{where}: path variable {var.name!r} must be a singular scalar")
            self.path_fields[var.name] = fields
            bound.add(var.field_path)

        self.body_all = route.body == "*"
        self.body_field: FieldDescriptor | None = None
        if route.body and not self.body_all:
            self.body_field = _resolve_names(request, (route.body,), where)[0]
            bound.add((route.body,))
        f = self.body_field
        self.body_object = (  # the body field's JSON form is an object
            f is not None and f.cpp_type == _CPP_MESSAGE and not f.is_repeated
            and f.message_type.full_name not in _NON_OBJECT_WKT
        )
        self.has_body = bool(route.body)
        self.bound = frozenset(bound)

        self.response_field: FieldDescriptor | None = None
        if route.response_body:
            self.response_field = _resolve_names(
                method.output_type, (route.response_body,), where
            )[0]

    # -- request ------------------------------------------------------------------------------

    def build_request(
        self, path_vars: dict[str, str], query_string: bytes | str, body: bytes | None
    ) -> Message:
        msg = self.request_class()
        if self.has_body and body is not None and body.strip():
            self._merge_body(msg, body)
        tree: dict[str, Any] = {}
        for name, value in path_vars.items():
            fields = self.path_fields[name]
            _put(tree, fields, _text_to_json(fields[-1], value, name), name)
        names: dict[str, str] = {}  # proto path -> the query parameter name the client used
        if query_string:
            self._add_query(tree, query_string, names)
        if tree:
            try:
                parse_into(tree, msg)
            except TranscodeError as e:
                e.field = names.get(e.field or "", e.field)
                raise
        return msg

    def _merge_body(self, msg: Message, body: bytes) -> None:
        data = loads_strict(body, "request body")
        if self.body_all:
            if not isinstance(data, dict):
                raise TranscodeError("INVALID_BODY", "request body must be a JSON object")
            parse_into(data, msg)
        elif data is not None:
            if self.body_object and not isinstance(data, dict):
                raise TranscodeError("INVALID_BODY", "request body must be a JSON object")
            parse_into({self.body_field.name: data}, msg)

    def _add_query(
        self, tree: dict[str, Any], query_string: bytes | str, names: dict[str, str]
    ) -> None:
        if isinstance(query_string, bytes):
            query_string = query_string.decode("latin-1")
        try:
            pairs = parse_qsl(
                query_string, keep_blank_values=True, errors="strict",
                max_num_fields=MAX_QUERY_PARAMS,
            )
        except (ValueError, UnicodeDecodeError):
            raise TranscodeError(
                "INVALID_QUERY_PARAMETER", "malformed or too many query parameters"
            ) from None
        if pairs and self.body_all:
            raise TranscodeError(
                "INVALID_QUERY_PARAMETER",
                "query parameters are not allowed: the request body carries the whole request",
                pairs[0][0],
            )
        request = self.request_class.DESCRIPTOR
        for name, value in pairs:
            fields = _resolve_query_param(request, name)
            proto_path = tuple(f.name for f in fields)
            for b in self.bound:
                n = min(len(b), len(proto_path))
                if b[:n] == proto_path[:n]:
                    raise TranscodeError(
                        "INVALID_QUERY_PARAMETER",
                        f"query parameter {name!r} names a field bound by the path or body",
                        name,
                    )
            _put(tree, fields, _text_to_json(fields[-1], value, name), name)
            names[".".join(proto_path)] = name

    # -- response -----------------------------------------------------------------------------

    def response_json(self, msg: Message) -> Any:
        """The JSON value (dict, list or scalar) for a response message."""
        f = self.response_field
        if f is None:
            return json_format.MessageToDict(msg)
        if f.cpp_type == _CPP_MESSAGE and not f.is_repeated:
            return json_format.MessageToDict(getattr(msg, f.name))
        if f.cpp_type == _CPP_MESSAGE and not _is_map(f):
            return [json_format.MessageToDict(m) for m in getattr(msg, f.name)]
        # Scalars, repeated scalars and maps: let json_format render them with defaults.
        full = json_format.MessageToDict(msg, always_print_fields_with_no_presence=True)
        return full.get(f.json_name)

    def encode_response(self, msg: Message) -> bytes:
        return dumps(self.response_json(msg))


# -- helpers -------------------------------------------------------------------------------


class _DuplicateKey(ValueError):
    pass


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(k)
        out[k] = v
    return out


def loads_strict(text: bytes | str, what: str = "request body") -> Any:
    """JSON with duplicate keys refused (a client typo must not silently pick one value)."""
    try:
        return json.loads(text, object_pairs_hook=_reject_duplicate_keys)
    except _DuplicateKey as e:
        raise TranscodeError("MALFORMED_JSON", f"duplicate JSON key {e.args[0]!r}") from None
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError
        raise TranscodeError("MALFORMED_JSON", f"{what} is not valid JSON") from None


def parse_into(data: dict[str, Any], msg: Message) -> None:
    """Merge proto3 JSON (already decoded) into `msg`; client mistakes raise TranscodeError
    naming the field."""
    try:
        json_format.ParseDict(data, msg, max_recursion_depth=_MAX_DEPTH)
    except json_format.ParseError as e:
        raise _from_parse_error(e, msg.DESCRIPTOR.name) from None
    except (TypeError, ValueError, AttributeError, KeyError, RecursionError, OverflowError):
        # json_format lets a few wrong-type inputs escape as plain exceptions.
        raise TranscodeError(
            "INVALID_FIELD_VALUE", "a field has a value of the wrong type"
        ) from None


def _from_parse_error(e: json_format.ParseError, root: str) -> TranscodeError:
    text = str(e).split("\n", 1)[0].strip().rstrip(".") + "."
    if len(text) > 300:
        text = text[:297] + "..."
    m = _NO_FIELD.search(text)
    if m is not None:
        parent = _strip_root(m.group(2), root)
        field = f"{parent}.{m.group(1)}" if parent else m.group(1)
        return TranscodeError("UNKNOWN_FIELD", text, field)
    chain = _FAILED_FIELD.findall(text)
    if chain:
        field = ".".join(chain)
    else:
        m = _PARSE_ERROR_PATH.search(text)
        field = (_strip_root(m.group(1), root) or None) if m is not None else None
    return TranscodeError("INVALID_FIELD_VALUE", text, field)


def _strip_root(path: str, root: str) -> str:
    if path == root:
        return ""
    return path[len(root) + 1:] if path.startswith(root + ".") else path


def _is_map(f: FieldDescriptor) -> bool:
    return (
        f.is_repeated
        and f.cpp_type == _CPP_MESSAGE
        and f.message_type.GetOptions().map_entry
    )


@functools.cache
def _fields_index(desc: Descriptor) -> dict[str, FieldDescriptor]:
    """Both JSON (lowerCamel) and proto names of a message's fields."""
    index = {f.json_name: f for f in desc.fields}
    index.update(desc.fields_by_name)
    return index


def _resolve_names(
    desc: Descriptor, names: tuple[str, ...], where: str
) -> tuple[FieldDescriptor, ...]:
    """Resolve a proto-name field path from an HTTP rule (startup; raises ValueError)."""
    fields = []
    for i, part in enumerate(names):
        f = desc.fields_by_name.get(part) if desc is not None else None
        if f is None:
            raise ValueError(f"{where}: no field {'.'.join(names[: i + 1])!r}")
        fields.append(f)
        if i + 1 < len(names):
            if f.cpp_type != _CPP_MESSAGE or f.is_repeated:
                raise ValueError(f"{where}: {'.'.join(names[: i + 1])!r} is not a message")
            desc = f.message_type
    return tuple(fields)


@functools.lru_cache(maxsize=4096)
def _resolve_query_param(desc: Descriptor, name: str) -> tuple[FieldDescriptor, ...]:
    """Resolve `a.b.c` (either naming style) to fields; only successes are cached."""
    fields: list[FieldDescriptor] = []
    parts = name.split(".")
    for i, part in enumerate(parts):
        f = _fields_index(desc).get(part)
        if f is None:
            raise TranscodeError("UNKNOWN_FIELD", f"unknown query parameter {name!r}", name)
        fields.append(f)
        last = i + 1 == len(parts)
        is_message = f.cpp_type == _CPP_MESSAGE
        scalar_wkt = is_message and f.message_type.full_name in _SCALAR_WKT
        if last:
            if is_message and (f.is_repeated or not scalar_wkt):
                raise TranscodeError(
                    "INVALID_QUERY_PARAMETER",
                    f"query parameter {name!r} names a message, map or repeated message field; "
                    "set its scalar fields instead (e.g. a.b=1), or use the request body",
                    name,
                )
        elif not is_message or f.is_repeated or scalar_wkt:
            raise TranscodeError(
                "INVALID_QUERY_PARAMETER", f"query parameter {name!r}: {part!r} has no fields", name
            )
        else:
            desc = f.message_type
    return tuple(fields)


def _text_to_json(f: FieldDescriptor, text: str, name: str) -> Any:
    """A path/query string as the JSON value json_format expects for field `f`."""
    cpp = f.cpp_type
    if cpp == _CPP_MESSAGE:
        if f.message_type.full_name == "google.protobuf.BoolValue":
            return _bool(text, name)
        return text
    if cpp == _CPP_BOOL:
        return _bool(text, name)
    if cpp == _CPP_ENUM and _INTEGER.fullmatch(text):
        return int(text)
    return text  # numbers: json_format accepts (and range-checks) their string forms


def _bool(text: str, name: str) -> bool:
    low = text.lower()
    if low in ("true", "1"):
        return True
    if low in ("false", "0"):
        return False
    raise TranscodeError("INVALID_FIELD_VALUE", f"{name!r} must be true or false", name)


def _conflict(name: str) -> TranscodeError:
    return TranscodeError("INVALID_QUERY_PARAMETER", f"{name!r} conflicts with another", name)


def _put(tree: dict[str, Any], fields: tuple[FieldDescriptor, ...], value: Any, name: str) -> None:
    node = tree
    for f in fields[:-1]:
        node = node.setdefault(f.name, {})
        if not isinstance(node, dict):
            raise _conflict(name)
    leaf = fields[-1]
    if leaf.is_repeated:
        items = node.setdefault(leaf.name, [])
        if not isinstance(items, list):
            raise _conflict(name)
        items.append(value)
    elif leaf.name in node:
        raise TranscodeError(
            "INVALID_QUERY_PARAMETER", f"{name!r} is given more than once but is not repeated", name
        )
    else:
        node[leaf.name] = value
