"""OpenAPI 3.1 from FileDescriptorProtos: the one builder behind gen/openapi.json and /openapi.json.

Hand-written: no maintained Python tool turns google.api.http-annotated descriptors into OpenAPI.
It reads the same rules as the router (gateway.routes) and describes what the gateway does:

- one operation per HTTP binding (additional bindings too), operationId `Service_Method`
  (`Service_Method_<n>` for the n-th additional binding), tagged with the service name;
- path parameters: a variable that spans several segments (`{name=users/*/devices/*}`) is
  expanded into its literal segments with one parameter per wildcard, named after the literal
  before it as Google's discovery documents do (`/users/{usersId}/devices/{devicesId}`), which
  is exactly the URL a client sends;
- query parameters for fields bound neither by the path nor by the body (nested with dots);
- request body per `body`, response per `response_body`; server-streaming RPCs respond with
  `application/x-ndjson`; every operation has a `default` error response (google.rpc.Status);
- schemas follow the proto3 JSON mapping (lowerCamel names, int64 as string, bytes as base64,
  Timestamp as date-time string, Duration/FieldMask as strings, wrappers nullable);
- descriptions come from proto comments when the descriptors carry source info;
- `security: bearer` unless the method is ACCESS_PUBLIC; ACCESS_INTERNAL methods are left out.
"""

from __future__ import annotations

import copy
import json
import pathlib
from collections.abc import Collection, Iterable, Sequence
from typing import Any

from google.api import field_behavior_pb2
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import FileDescriptor

from gateway.path_template import DOUBLE_WILDCARD, WILDCARD, PathTemplate
from gateway.routes import ACCESS_INTERNAL, ACCESS_PUBLIC, access_of, http_rules, rule_pattern

__all__ = ["build", "dump", "files_from_descriptors", "files_from_image"]

FDP = descriptor_pb2.FieldDescriptorProto
_REF = "#/components/schemas/"
_STATUS = "google.rpc.Status"
_NDJSON = "application/x-ndjson"

_SCALARS: dict[int, dict[str, Any]] = {
    FDP.TYPE_DOUBLE: {"type": "number", "format": "double"},
    FDP.TYPE_FLOAT: {"type": "number", "format": "float"},
    FDP.TYPE_INT32: {"type": "integer", "format": "int32"},
    FDP.TYPE_SINT32: {"type": "integer", "format": "int32"},
    FDP.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    FDP.TYPE_UINT32: {"type": "integer", "format": "uint32", "minimum": 0},
    FDP.TYPE_FIXED32: {"type": "integer", "format": "uint32", "minimum": 0},
    FDP.TYPE_INT64: {"type": "string", "format": "int64"},
    FDP.TYPE_SINT64: {"type": "string", "format": "int64"},
    FDP.TYPE_SFIXED64: {"type": "string", "format": "int64"},
    FDP.TYPE_UINT64: {"type": "string", "format": "uint64"},
    FDP.TYPE_FIXED64: {"type": "string", "format": "uint64"},
    FDP.TYPE_BOOL: {"type": "boolean"},
    FDP.TYPE_STRING: {"type": "string"},
    FDP.TYPE_BYTES: {"type": "string", "format": "byte", "contentEncoding": "base64"},
}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "type": [schema["type"], "null"]}


_WKT: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {
        "type": "string", "pattern": r"^-?[0-9]+(\.[0-9]{1,9})?s$", "examples": ["1.5s"],
    },
    "google.protobuf.FieldMask": {
        "type": "string", "description": "Comma-separated lowerCamel field paths.",
    },
    "google.protobuf.Empty": {"type": "object"},
    "google.protobuf.Struct": {"type": "object", "additionalProperties": True},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array", "items": {}},
    "google.protobuf.Any": {"$ref": _REF + "google.protobuf.Any"},
    "google.protobuf.DoubleValue": _nullable(_SCALARS[FDP.TYPE_DOUBLE]),
    "google.protobuf.FloatValue": _nullable(_SCALARS[FDP.TYPE_FLOAT]),
    "google.protobuf.Int64Value": _nullable(_SCALARS[FDP.TYPE_INT64]),
    "google.protobuf.UInt64Value": _nullable(_SCALARS[FDP.TYPE_UINT64]),
    "google.protobuf.Int32Value": _nullable(_SCALARS[FDP.TYPE_INT32]),
    "google.protobuf.UInt32Value": _nullable(_SCALARS[FDP.TYPE_UINT32]),
    "google.protobuf.BoolValue": _nullable(_SCALARS[FDP.TYPE_BOOL]),
    "google.protobuf.StringValue": _nullable(_SCALARS[FDP.TYPE_STRING]),
    "google.protobuf.BytesValue": _nullable(_SCALARS[FDP.TYPE_BYTES]),
}
# WKTs a query parameter can carry (their JSON form is a scalar).
_QUERY_WKT = {k for k, v in _WKT.items() if v.get("type") not in (None, "object", "array")}

_FIXED_COMPONENTS: dict[str, Any] = {
    "google.protobuf.Any": {
        "type": "object",
        "description": "A message of any type, identified by `@type`, in its JSON form.",
        "properties": {"@type": {"type": "string"}},
        "required": ["@type"],
        "additionalProperties": True,
    },
    _STATUS: {
        "type": "object",
        "description": (
            "An error (AIP-193): the gRPC status code, a developer-facing message and details "
            "such as google.rpc.ErrorInfo, BadRequest and RetryInfo."
        ),
        "properties": {
            "code": {"type": "integer", "format": "int32", "description": "gRPC status code."},
            "message": {"type": "string"},
            "details": {"type": "array", "items": {"$ref": _REF + "google.protobuf.Any"}},
        },
        "required": ["code", "message", "details"],
    },
}


# -- inputs ------------------------------------------------------------------------------------


def files_from_image(path: str | pathlib.Path) -> list[descriptor_pb2.FileDescriptorProto]:
    """The files of a FileDescriptorSet (e.g. gen/zynk.binpb)."""
    data = pathlib.Path(path).read_bytes()
    return list(descriptor_pb2.FileDescriptorSet.FromString(data).file)


def files_from_descriptors(
    files: Iterable[FileDescriptor],
) -> list[descriptor_pb2.FileDescriptorProto]:
    """FileDescriptorProtos (via CopyToProto) of `files` and everything they import."""
    out: dict[str, descriptor_pb2.FileDescriptorProto] = {}

    def visit(fd: FileDescriptor) -> None:
        if fd.name in out:
            return
        proto = descriptor_pb2.FileDescriptorProto()
        fd.CopyToProto(proto)
        out[fd.name] = proto
        for dep in fd.dependencies:
            visit(dep)

    for fd in files:
        visit(fd)
    return list(out.values())


def dump(document: dict[str, Any]) -> str:
    """Deterministic JSON text (sorted keys, two-space indent, trailing newline)."""
    return json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


# -- builder -----------------------------------------------------------------------------------


def build(
    files: Sequence[descriptor_pb2.FileDescriptorProto],
    *,
    services: Collection[str] | None = None,
    title: str = "Zynk API",
    version: str = "v1",
) -> dict[str, Any]:
    """The OpenAPI 3.1 document for every HTTP-annotated service in `files`.

    `services` (full names) restricts the output, e.g. to what a gateway actually routes.
    """
    return _Builder(files).document(services, title, version)


class _Builder:
    def __init__(self, files: Sequence[descriptor_pb2.FileDescriptorProto]) -> None:
        self.files = sorted(files, key=lambda f: f.name)
        self.messages: dict[str, descriptor_pb2.DescriptorProto] = {}
        self.enums: dict[str, descriptor_pb2.EnumDescriptorProto] = {}
        self.comments: dict[str, str] = {}  # full name (or "svc.Method", "Msg.field") -> text
        for f in self.files:
            self._index_file(f)
        self.wanted: list[str] = []
        self.schemas: dict[str, Any] = {}

    # indexing

    def _index_file(self, f: descriptor_pb2.FileDescriptorProto) -> None:
        loc = {
            tuple(x.path): (x.leading_comments or x.trailing_comments)
            for x in f.source_code_info.location
        }
        pkg = f".{f.package}" if f.package else ""

        def note(name: str, path: tuple[int, ...]) -> None:
            text = _clean_comment(loc.get(path, ""))
            if text:
                self.comments[name] = text

        def enum(e: descriptor_pb2.EnumDescriptorProto, scope: str, path: tuple[int, ...]):
            name = f"{scope}.{e.name}"
            self.enums[name] = e
            note(name, path)
            for i, v in enumerate(e.value):
                note(f"{name}.{v.name}", (*path, 2, i))

        def message(m: descriptor_pb2.DescriptorProto, scope: str, path: tuple[int, ...]):
            name = f"{scope}.{m.name}"
            self.messages[name] = m
            note(name, path)
            for i, fld in enumerate(m.field):
                note(f"{name}.{fld.name}", (*path, 2, i))
            for i, nested in enumerate(m.nested_type):
                message(nested, name, (*path, 3, i))
            for i, e in enumerate(m.enum_type):
                enum(e, name, (*path, 4, i))

        for i, m in enumerate(f.message_type):
            message(m, pkg, (4, i))
        for i, e in enumerate(f.enum_type):
            enum(e, pkg, (5, i))
        for i, s in enumerate(f.service):
            note(f"{pkg}.{s.name}", (6, i))
            for j, m in enumerate(s.method):
                note(f"{pkg}.{s.name}.{m.name}", (6, i, 2, j))

    # document

    def document(self, services: Collection[str] | None, title: str, version: str) -> dict:
        paths: dict[str, dict[str, Any]] = {}
        tags: list[dict[str, Any]] = []
        uses_bearer = False
        for f in self.files:
            pkg = f".{f.package}" if f.package else ""
            for s in f.service:
                full = f"{pkg}.{s.name}"
                if services is not None and full[1:] not in services:
                    continue
                operations = 0
                for m in s.method:
                    access = access_of(m.options)
                    if access == ACCESS_INTERNAL or m.client_streaming:
                        continue
                    for binding, rule in http_rules(m.options):
                        pattern = rule_pattern(rule)
                        if pattern is None:
                            continue
                        verb, template = pattern
                        path, op = self._operation(full, s, m, binding, rule, template, access)
                        item = paths.setdefault(path, {})
                        if verb.lower() in item:
                            raise ValueError(
                                f"two operations map to {verb} {path}: "
                                f"{item[verb.lower()]['operationId']} and {op['operationId']}"
                            )
                        item[verb.lower()] = op
                        operations += 1
                        uses_bearer |= access != ACCESS_PUBLIC
                if operations:
                    tag = {"name": s.name, "x-grpc-service": full[1:]}
                    if full in self.comments:
                        tag["description"] = self.comments[full]
                    tags.append(tag)
        self.schemas.update(copy.deepcopy(_FIXED_COMPONENTS))
        while self.wanted:
            name = self.wanted.pop()
            key = name[1:]
            if key not in self.schemas:
                self.schemas[key] = self._component(name)
        components: dict[str, Any] = {"schemas": self.schemas}
        if uses_bearer:
            components["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            }
        return {
            "openapi": "3.1.0",
            "info": {
                "title": title,
                "version": version,
                "description": (
                    "REST/JSON transcoding of the gRPC API (proto3 JSON mapping: lowerCamel "
                    "names, 64-bit integers as strings, enums as names, default values omitted)."
                ),
            },
            "tags": sorted(tags, key=lambda t: t["name"]),
            "paths": paths,
            "components": components,
        }

    def _operation(self, svc_full, s, m, binding, rule, template, access) -> tuple[str, dict]:
        tpl = PathTemplate.parse(template)
        path, path_params = _openapi_path(tpl)
        request_name, response_name = m.input_type, m.output_type
        request = self.messages.get(request_name)
        bound = [var.field_path for var in tpl.variables]
        if rule.body and rule.body != "*":
            bound.append((rule.body,))
        params = []
        for p in path_params:
            p["schema"] = {"type": "string"}
            desc = self._field_comment(request_name, p.pop("x-field-path"))
            if desc and "description" not in p:
                p["description"] = desc
            elif desc:
                p["description"] = f"{p['description']} {desc}"
            params.append(p)
        if rule.body != "*" and request is not None:
            params.extend(self._query_params(request_name, bound, ()))

        op: dict[str, Any] = {
            "operationId": f"{s.name}_{m.name}" + (f"_{binding}" if binding else ""),
            "tags": [s.name],
            "x-grpc-method": f"/{svc_full[1:]}/{m.name}",
            "parameters": params,
            "security": [] if access == ACCESS_PUBLIC else [{"bearer": []}],
        }
        comment = self.comments.get(f"{svc_full}.{m.name}")
        if comment:
            op["summary"] = comment.split("\n", 1)[0].split(". ", 1)[0].rstrip(".")
            op["description"] = comment
        if rule.body:
            if rule.body == "*":
                schema = self._message_schema_excluding(request_name, bound)
            else:
                fld = self._field(request_name, rule.body)
                nested = [b[1:] for b in bound if len(b) > 1 and b[0] == rule.body]
                schema = self._field_schema(request_name, fld, exclude=nested)
            op["requestBody"] = {"content": {"application/json": {"schema": schema}}}
        if rule.response_body:
            out = self._field_schema(response_name, self._field(response_name, rule.response_body))
        else:
            out = self._type_ref(response_name)
        if m.server_streaming:
            content = {_NDJSON: {"schema": out}}
            description = (
                "A stream of newline-delimited JSON objects, one per message. An error after the "
                'stream started ends it with a final `{"error": google.rpc.Status}` line.'
            )
        else:
            content = {"application/json": {"schema": out}}
            description = "OK"
        op["responses"] = {
            "200": {"description": description, "content": content},
            "default": {
                "description": "Error: a google.rpc.Status with ErrorInfo/BadRequest details.",
                "content": {"application/json": {"schema": {"$ref": _REF + _STATUS}}},
            },
        }
        return path, op

    # fields and schemas

    def _field(self, message_name: str, field_name: str) -> descriptor_pb2.FieldDescriptorProto:
        for fld in self.messages[message_name].field:
            if fld.name == field_name:
                return fld
        raise KeyError(f"{message_name[1:]} has no field {field_name!r}")

    def _field_comment(self, message_name: str, field_path: tuple[str, ...]) -> str:
        name = message_name
        for i, part in enumerate(field_path):
            msg = self.messages.get(name)
            if msg is None:
                return ""
            fld = next((f for f in msg.field if f.name == part), None)
            if fld is None:
                return ""
            if i + 1 == len(field_path):
                return self.comments.get(f"{name}.{part}", "")
            name = fld.type_name
        return ""

    def _is_map(self, fld: descriptor_pb2.FieldDescriptorProto) -> bool:
        if fld.type != FDP.TYPE_MESSAGE or fld.label != FDP.LABEL_REPEATED:
            return False
        entry = self.messages.get(fld.type_name)
        return entry is not None and entry.options.map_entry

    def _type_ref(self, type_name: str) -> dict[str, Any]:
        if type_name in (".google.protobuf.NullValue",):
            return {"type": "null"}
        if type_name[1:] in _WKT:
            return copy.deepcopy(_WKT[type_name[1:]])
        self.wanted.append(type_name)
        return {"$ref": _REF + type_name[1:]}

    def _value_schema(self, fld: descriptor_pb2.FieldDescriptorProto) -> dict[str, Any]:
        if fld.type in (FDP.TYPE_MESSAGE, FDP.TYPE_ENUM, FDP.TYPE_GROUP):
            return self._type_ref(fld.type_name)
        return copy.deepcopy(_SCALARS[fld.type])

    def _field_schema(
        self,
        message_name: str,
        fld: descriptor_pb2.FieldDescriptorProto,
        exclude: Sequence[tuple[str, ...]] = (),
    ) -> dict[str, Any]:
        if self._is_map(fld):
            entry = self.messages[fld.type_name]
            value = next(f for f in entry.field if f.name == "value")
            schema: dict[str, Any] = {
                "type": "object", "additionalProperties": self._value_schema(value),
            }
        elif exclude and fld.type == FDP.TYPE_MESSAGE:
            schema = self._message_schema_excluding(fld.type_name, exclude)
        else:
            schema = self._value_schema(fld)
            if fld.label == FDP.LABEL_REPEATED:
                schema = {"type": "array", "items": schema}
        comment = self.comments.get(f"{message_name}.{fld.name}")
        if comment:
            schema["description"] = comment
        behaviors = set(fld.options.Extensions[field_behavior_pb2.field_behavior])
        if field_behavior_pb2.OUTPUT_ONLY in behaviors:
            schema["readOnly"] = True
        if field_behavior_pb2.INPUT_ONLY in behaviors:
            schema["writeOnly"] = True
        if fld.options.deprecated:
            schema["deprecated"] = True
        return schema

    def _message_schema_excluding(
        self, message_name: str, exclude: Sequence[tuple[str, ...]]
    ) -> dict[str, Any]:
        """The message's schema without the (nested) fields bound elsewhere, or a plain $ref."""
        if not exclude or message_name not in self.messages:
            return self._type_ref(message_name)
        return self._component(message_name, exclude)

    def _component(
        self, name: str, exclude: Sequence[tuple[str, ...]] = ()
    ) -> dict[str, Any]:
        if name in self.enums:
            e = self.enums[name]
            schema: dict[str, Any] = {
                "type": "string",
                "enum": [v.name for v in e.value],
            }
            lines = [self.comments.get(name, "")]
            values = [
                f"- `{v.name}` ({v.number}): {self.comments.get(f'{name}.{v.name}', '')}".rstrip(
                    ": "
                )
                for v in e.value
            ]
            lines.append("Values (the number is accepted on input too):\n" + "\n".join(values))
            schema["description"] = "\n\n".join(x for x in lines if x)
            return schema
        msg = self.messages.get(name)
        if msg is None:  # a type whose file was not supplied: describe it as any object
            return {"type": "object", "additionalProperties": True}
        top_excluded = {p[0] for p in exclude if len(p) == 1}
        properties: dict[str, Any] = {}
        required: list[str] = []
        for fld in msg.field:
            if fld.name in top_excluded:
                continue
            nested = [p[1:] for p in exclude if len(p) > 1 and p[0] == fld.name]
            json_name = fld.json_name or _lower_camel(fld.name)
            properties[json_name] = self._field_schema(name, fld, exclude=nested)
            behaviors = fld.options.Extensions[field_behavior_pb2.field_behavior]
            if field_behavior_pb2.REQUIRED in behaviors:
                required.append(json_name)
        schema = {"type": "object", "properties": properties}
        if required:
            schema["required"] = required
        comment = self.comments.get(name)
        if comment:
            schema["description"] = comment
        return schema

    def _query_params(
        self, message_name: str, bound: Sequence[tuple[str, ...]], prefix: tuple[str, ...],
        json_prefix: str = "", stack: tuple[str, ...] = (),
    ) -> list[dict[str, Any]]:
        msg = self.messages.get(message_name)
        if msg is None or message_name in stack or len(stack) > 4:
            return []
        out = []
        for fld in msg.field:
            proto_path = (*prefix, fld.name)
            if proto_path in bound:
                continue
            json_name = json_prefix + (fld.json_name or _lower_camel(fld.name))
            repeated = fld.label == FDP.LABEL_REPEATED
            is_message = fld.type in (FDP.TYPE_MESSAGE, FDP.TYPE_GROUP)
            if is_message and fld.type_name[1:] not in _QUERY_WKT:
                if not repeated:
                    out.extend(
                        self._query_params(
                            fld.type_name, bound, proto_path, json_name + ".",
                            (*stack, message_name),
                        )
                    )
                continue
            schema = self._value_schema(fld)
            param: dict[str, Any] = {"name": json_name, "in": "query"}
            if repeated:
                param["schema"] = {"type": "array", "items": schema}
                param["style"] = "form"
                param["explode"] = True
            else:
                param["schema"] = schema
            comment = self.comments.get(f"{message_name}.{fld.name}")
            if comment:
                param["description"] = comment
            if fld.options.deprecated:
                param["deprecated"] = True
            out.append(param)
        return out


def _openapi_path(tpl: PathTemplate) -> tuple[str, list[dict[str, Any]]]:
    """OpenAPI path and path parameters (each with `x-field-path`) for a template."""
    starts = {v.start: v for v in tpl.variables}
    parts: list[str] = []
    params: list[dict[str, Any]] = []
    used: set[str] = set()

    def param(name: str, var, description: str | None) -> str:
        base, n = name, 2
        while name in used:
            name, n = f"{base}{n}", n + 1
        used.add(name)
        p: dict[str, Any] = {"name": name, "in": "path", "required": True}
        if description:
            p["description"] = description
        p["x-field-path"] = var.field_path
        params.append(p)
        return "{" + name + "}"

    i = 0
    while i < len(tpl.segments):
        var = starts.get(i)
        if var is None:
            seg = tpl.segments[i]
            parts.append("{path}" if seg in (WILDCARD, DOUBLE_WILDCARD) else seg)
            i += 1
            continue
        span = tpl.segments[var.start: var.end]
        if span == (WILDCARD,):
            parts.append(param(var.name, var, None))
        else:
            pattern = "/".join(span)
            for j, seg in enumerate(span):
                if seg in (WILDCARD, DOUBLE_WILDCARD):
                    before = span[j - 1] if j else WILDCARD
                    prev = "" if before in (WILDCARD, DOUBLE_WILDCARD) else before
                    name = f"{prev}Id" if prev else var.name
                    note = f"A segment of `{var.name}` (`{pattern}`)."
                    if seg == DOUBLE_WILDCARD:
                        note = (
                            f"The rest of `{var.name}` (`{pattern}`); may contain unescaped '/'."
                        )
                    parts.append(param(name, var, note))
                else:
                    parts.append(seg)
        i = var.end
    path = "/" + "/".join(parts) + (f":{tpl.verb}" if tpl.verb else "")
    return path, params


def _lower_camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _clean_comment(text: str) -> str:
    lines = [line[1:] if line.startswith(" ") else line for line in text.strip("\n").split("\n")]
    return "\n".join(line.rstrip() for line in lines).strip()
