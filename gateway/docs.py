"""/docs: a self-contained HTML rendering of the OpenAPI document (no scripts, no external assets).

Rendered once at startup: operations grouped by service (tag) with method, path, description,
parameters, request and response schemas, then every component schema with its properties.
"""

from __future__ import annotations

from html import escape
from typing import Any

__all__ = ["render_docs"]

_REF = "#/components/schemas/"
_METHODS = ("get", "post", "put", "patch", "delete", "head", "options")

_CSS = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2330;
background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:1.2rem 2rem}header h1{margin:0;font-size:1.5rem}
header p{margin:.3rem 0 0;color:#c8cdd8}main{max-width:1100px;margin:0 auto;padding:1rem 2rem 4rem}
nav{background:#fff;border:1px solid #dde1e8;border-radius:6px;padding:.6rem 1rem;margin:1rem 0}
nav a{margin-right:1rem}a{color:#2456c8;text-decoration:none}a:hover{text-decoration:underline}
h2{border-bottom:2px solid #dde1e8;padding-bottom:.3rem;margin-top:2.5rem}
details.op{background:#fff;border:1px solid #dde1e8;border-radius:6px;margin:.5rem 0}
details.op>summary{cursor:pointer;padding:.55rem .8rem;list-style:none;display:flex;gap:.8rem;
align-items:center}details.op>summary::-webkit-details-marker{display:none}
.body{padding:.2rem 1rem 1rem;border-top:1px solid #eef0f4}
.m{font:600 12px/1 ui-monospace,monospace;color:#fff;border-radius:4px;padding:.35rem .5rem;
min-width:3.6rem;text-align:center;text-transform:uppercase}
.get{background:#2f8f5b}.post{background:#2456c8}.put{background:#b8761a}.patch{background:#8a4fc4}
.delete{background:#c53a3a}.head,.options{background:#666}
code,.path{font-family:ui-monospace,SFMono-Regular,Menlo,monospace}.path{font-weight:600}
.sum{color:#555}.lock{margin-left:auto;font-size:12px;color:#555;white-space:nowrap}
table{border-collapse:collapse;width:100%;margin:.4rem 0 1rem;font-size:14px}
th,td{text-align:left;border-bottom:1px solid #eef0f4;padding:.35rem .5rem;vertical-align:top}
th{background:#f3f5f8;font-weight:600}.desc{white-space:pre-wrap}.flag{font-size:12px;color:#8a4fc4}
section.schema{background:#fff;border:1px solid #dde1e8;border-radius:6px;padding:.2rem 1rem;
margin:.8rem 0}h4{margin:.8rem 0 .2rem}
"""


def render_docs(document: dict[str, Any]) -> str:
    info = document.get("info", {})
    title = escape(str(info.get("title", "API")))
    tags = document.get("tags", [])
    by_tag: dict[str, list[tuple[str, str, dict[str, Any]]]] = {t["name"]: [] for t in tags}
    for path in sorted(document.get("paths", {})):
        for method in _METHODS:
            op = document["paths"][path].get(method)
            if op is not None:
                for tag in op.get("tags", ["default"]):
                    by_tag.setdefault(tag, []).append((path, method, op))
    tag_desc = {t["name"]: t.get("description", "") for t in tags}

    out = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        '<meta name=viewport content="width=device-width,initial-scale=1">',
        f"<title>{title}</title><style>{_CSS}</style></head><body>",
        f"<header><h1>{title} <small>{escape(str(info.get('version', '')))}</small></h1>",
        f"<p>{escape(str(info.get('description', '')))}</p></header><main>",
        '<nav><strong>Services:</strong> '
        + "".join(f'<a href="#tag-{escape(t)}">{escape(t)}</a>' for t in by_tag)
        + '<a href="#schemas">Schemas</a> <a href="/openapi.json">openapi.json</a></nav>',
    ]
    for tag, ops in by_tag.items():
        out.append(f'<h2 id="tag-{escape(tag)}">{escape(tag)}</h2>')
        if tag_desc.get(tag):
            out.append(f'<p class=desc>{escape(tag_desc[tag])}</p>')
        for path, method, op in ops:
            out.append(_operation(path, method, op))
    out.append('<h2 id="schemas">Schemas</h2>')
    for name, schema in sorted(document.get("components", {}).get("schemas", {}).items()):
        out.append(_schema_section(name, schema))
    out.append("</main></body></html>")
    return "\n".join(out)


def _operation(path: str, method: str, op: dict[str, Any]) -> str:
    secured = bool(op.get("security"))
    parts = [
        f'<details class=op id="op-{escape(op.get("operationId", ""))}"><summary>'
        f'<span class="m {method}">{method}</span><span class=path>{escape(path)}</span>'
        f'<span class=sum>{escape(op.get("summary", ""))}</span>'
        f'<span class=lock>{"bearer token" if secured else "public"}</span></summary>',
        "<div class=body>",
        f'<p><code>{escape(op.get("operationId", ""))}</code> &rarr; gRPC '
        f'<code>{escape(op.get("x-grpc-method", ""))}</code></p>',
    ]
    if op.get("description"):
        parts.append(f'<p class=desc>{escape(op["description"])}</p>')
    params = op.get("parameters", [])
    if params:
        parts.append("<h4>Parameters</h4><table><tr><th>name</th><th>in</th><th>type</th>"
                     "<th>description</th></tr>")
        for p in params:
            req = " <span class=flag>required</span>" if p.get("required") else ""
            parts.append(
                f"<tr><td><code>{escape(p['name'])}</code>{req}</td><td>{escape(p['in'])}</td>"
                f"<td>{_type(p.get('schema', {}))}</td>"
                f"<td class=desc>{escape(p.get('description', ''))}</td></tr>"
            )
        parts.append("</table>")
    body = op.get("requestBody", {}).get("content", {})
    for media, content in body.items():
        parts.append(f"<h4>Request body <small>({escape(media)})</small></h4>")
        parts.append(_inline_schema(content.get("schema", {})))
    for status, response in op.get("responses", {}).items():
        parts.append(f"<h4>Response {escape(status)}</h4>")
        parts.append(f'<p class=desc>{escape(response.get("description", ""))}</p>')
        for media, content in response.get("content", {}).items():
            parts.append(f"<p><small>{escape(media)}</small>: {_type(content.get('schema', {}))}"
                         "</p>")
    parts.append("</div></details>")
    return "".join(parts)


def _inline_schema(schema: dict[str, Any]) -> str:
    if "properties" in schema:
        return _properties(schema)
    return f"<p>{_type(schema)}</p>"


def _schema_section(name: str, schema: dict[str, Any]) -> str:
    parts = [f'<section class=schema id="schema-{escape(name)}"><h3>{escape(name)}</h3>']
    if schema.get("description"):
        parts.append(f'<p class=desc>{escape(schema["description"])}</p>')
    if "properties" in schema:
        parts.append(_properties(schema))
    elif "enum" in schema:
        parts.append("<p>enum: " + ", ".join(f"<code>{escape(str(v))}</code>"
                                            for v in schema["enum"]) + "</p>")
    else:
        parts.append(f"<p>{_type(schema)}</p>")
    parts.append("</section>")
    return "".join(parts)


def _properties(schema: dict[str, Any]) -> str:
    required = set(schema.get("required", []))
    rows = ["<table><tr><th>field</th><th>type</th><th>description</th></tr>"]
    for name, prop in schema.get("properties", {}).items():
        flags = [f for f, on in (("required", name in required),
                                 ("output only", prop.get("readOnly")),
                                 ("input only", prop.get("writeOnly")),
                                 ("deprecated", prop.get("deprecated"))) if on]
        flag_html = "".join(f" <span class=flag>{f}</span>" for f in flags)
        rows.append(f"<tr><td><code>{escape(name)}</code>{flag_html}</td><td>{_type(prop)}</td>"
                    f"<td class=desc>{escape(prop.get('description', ''))}</td></tr>")
    rows.append("</table>")
    return "".join(rows)


def _type(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        name = schema["$ref"].removeprefix(_REF)
        return f'<a href="#schema-{escape(name)}">{escape(name)}</a>'
    kind = schema.get("type")
    if kind == "array":
        return "array of " + _type(schema.get("items", {}))
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return "map of string to " + _type(schema["additionalProperties"])
    if kind == "object" and "properties" in schema:
        return "object {" + ", ".join(escape(k) for k in schema["properties"]) + "}"
    if isinstance(kind, list):
        text = " | ".join(kind)
    else:
        text = kind or "any JSON value"
    if schema.get("format"):
        text += f" ({schema['format']})"
    if schema.get("enum"):
        text += ": " + ", ".join(map(str, schema["enum"]))
    return escape(text)
