"""google.api.http path templates: parse once at startup, match many times.

Hand-written on purpose: no maintained Python library parses or matches the template grammar of
google/api/http.proto, so this module does exactly that and nothing else.

    Template = "/" Segments [ Verb ] ;
    Segments = Segment { "/" Segment } ;
    Segment  = "*" | "**" | LITERAL | Variable ;
    Variable = "{" FieldPath [ "=" Segments ] "}" ;
    FieldPath = IDENT { "." IDENT } ;
    Verb     = ":" LITERAL ;

`*` matches one path segment, `**` zero or more (only as the last segment), `{f}` is `{f=*}`.
Each template compiles to a regular expression over the *normalized raw* request path (see
:func:`normalize_path`), so `%2F` inside a segment never splits it and `%3A` is never a verb
separator. Captured values are then percent-decoded per http.proto: a variable that spans one
segment (`{f}`, `{f=*}`) is fully decoded (`%2F` becomes `/`); a multi-segment variable
(`{f=users/*}`, `{f=**}`) is decoded except for `%2F`, which stays encoded so that it cannot be
confused with a real segment separator.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from urllib.parse import unquote

__all__ = [
    "PathDecodeError",
    "PathTemplate",
    "PathTemplateError",
    "Variable",
    "decode_variable",
    "normalize_path",
]

WILDCARD = "*"
DOUBLE_WILDCARD = "**"

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Characters allowed in a template literal (RFC 3986 pchar without ':' and the template syntax).
_LITERAL = re.compile(r"[A-Za-z0-9\-._~!$&'()+,;=@%]+")
_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_ENCODED_SLASH = re.compile(r"%2[Ff]")


class PathTemplateError(ValueError):
    """A template string does not follow the google.api.http grammar."""


class PathDecodeError(ValueError):
    """A request path has a malformed percent-escape or does not decode to UTF-8."""


@dataclass(frozen=True, slots=True)
class Variable:
    """A `{field.path=...}` binding over `segments[start:end]` of its template."""

    field_path: tuple[str, ...]
    start: int
    end: int
    multi_segment: bool

    @property
    def name(self) -> str:
        return ".".join(self.field_path)


@dataclass(frozen=True, slots=True)
class PathTemplate:
    """A parsed template. `segments` holds literals, `*` and `**`; variables label spans of it."""

    template: str
    segments: tuple[str, ...]
    verb: str | None
    variables: tuple[Variable, ...]
    _compiled: re.Pattern[str] = field(repr=False, compare=False, hash=False)

    @classmethod
    def parse(cls, template: str) -> PathTemplate:
        segments, variables, verb = _Parser(template).parse()
        source = _regex(segments, variables, verb, "v")
        return cls(template, segments, verb, variables, re.compile(f"^{source}$"))

    # -- matching ---------------------------------------------------------------------------

    def regex(self, group_prefix: str) -> str:
        """Regex source (unanchored) with one named group `{group_prefix}{i}` per variable."""
        return _regex(self.segments, self.variables, self.verb, group_prefix)

    def match(self, raw_path: str) -> dict[str, str] | None:
        """Match a raw (still percent-encoded) request path; return decoded variable values.

        Raises PathDecodeError for malformed escapes. Returns None when the path does not match.
        """
        m = self._compiled.match(normalize_path(raw_path))
        if m is None:
            return None
        return self.bind([m.group(f"v{i}") for i in range(len(self.variables))])

    def bind(self, captured: list[str]) -> dict[str, str]:
        """Decode the captured raw values (in variable order) into `{field.path: value}`."""
        return {
            var.name: decode_variable(value or "", var.multi_segment)
            for var, value in zip(self.variables, captured, strict=True)
        }

    # -- properties used by the router and the OpenAPI builder ------------------------------

    @property
    def shape(self) -> tuple[tuple[str, ...], str | None]:
        """What the template matches, with variable names erased (equal shapes conflict)."""
        return self.segments, self.verb

    @property
    def specificity(self) -> tuple[tuple[int, ...], bool]:
        """Sort key: literals before `*` before `**`, segment by segment; verbs first."""
        rank = tuple(
            2 if s == DOUBLE_WILDCARD else 1 if s == WILDCARD else 0 for s in self.segments
        )
        return rank, self.verb is None

    def __str__(self) -> str:
        return self.template


def normalize_path(raw_path: str) -> str:
    """Canonicalize percent-escapes of a raw path before matching.

    Escapes of unreserved characters are decoded (`%41` -> `A`), every other escape is kept and
    upper-cased (`%2f` -> `%2F`). A `%` not followed by two hex digits raises PathDecodeError.
    """
    if "%" not in raw_path:
        return raw_path
    if _BAD_ESCAPE.search(raw_path):
        raise PathDecodeError("malformed percent-encoding in path")

    def sub(m: re.Match[str]) -> str:
        ch = chr(int(m.group(1), 16))
        return ch if ch in _UNRESERVED else "%" + m.group(1).upper()

    return _ESCAPE.sub(sub, raw_path)


def decode_variable(value: str, multi_segment: bool) -> str:
    """Percent-decode a captured value (UTF-8); multi-segment values keep `%2F` encoded."""
    if "%" not in value:
        return value
    try:
        if multi_segment:
            return "%2F".join(unquote(p, errors="strict") for p in _ENCODED_SLASH.split(value))
        return unquote(value, errors="strict")
    except UnicodeDecodeError as e:
        raise PathDecodeError("path is not valid UTF-8 after percent-decoding") from e


def _regex(
    segments: tuple[str, ...], variables: tuple[Variable, ...], verb: str | None, prefix: str
) -> str:
    starts = {v.start: i for i, v in enumerate(variables)}
    ends = {v.end - 1 for v in variables}
    out: list[str] = []
    for i, seg in enumerate(segments):
        opening = starts.get(i)
        if seg == DOUBLE_WILDCARD and opening is None:
            out.append("(?:/[^/]+)*")  # zero or more further segments, inside a variable or bare
        else:
            out.append("/")
            if opening is not None:
                out.append(f"(?P<{prefix}{opening}>")
            if seg == DOUBLE_WILDCARD:  # `{f=**}`: the variable is the whole (possibly empty) rest
                out.append("(?:[^/]+(?:/[^/]+)*)?")
            elif seg == WILDCARD:
                out.append("[^/]+")
            else:
                out.append(re.escape(seg))
        if i in ends:
            out.append(")")
    if verb is not None:
        out.append(":" + re.escape(verb))
    return "".join(out)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.segments: list[str] = []
        self.variables: list[Variable] = []

    def fail(self, what: str) -> PathTemplateError:
        return PathTemplateError(f"invalid path template {self.text!r} at {self.pos}: {what}")

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def parse(self) -> tuple[tuple[str, ...], tuple[Variable, ...], str | None]:
        if not self.text.startswith("/"):
            raise self.fail("must start with '/'")
        self.pos = 1
        self.parse_segments(in_variable=False)
        verb = None
        if self.peek() == ":":
            self.pos += 1
            verb = self.literal()
        if self.pos != len(self.text):
            raise self.fail(f"unexpected {self.peek()!r}")
        segments = tuple(self.segments)
        if DOUBLE_WILDCARD in segments[:-1]:
            raise PathTemplateError(f"invalid path template {self.text!r}: '**' must be last")
        names = [v.field_path for v in self.variables]
        for a in names:
            for b in names:
                if a is not b and b[: len(a)] == a:
                    raise PathTemplateError(
                        f"invalid path template {self.text!r}: field {'.'.join(a)!r} bound twice"
                    )
        return segments, tuple(self.variables), verb

    def parse_segments(self, in_variable: bool) -> None:
        while True:
            self.parse_segment(in_variable)
            if self.peek() != "/":
                return
            self.pos += 1

    def parse_segment(self, in_variable: bool) -> None:
        if self.text.startswith(DOUBLE_WILDCARD, self.pos):
            self.segments.append(DOUBLE_WILDCARD)
            self.pos += 2
        elif self.peek() == WILDCARD:
            self.segments.append(WILDCARD)
            self.pos += 1
        elif self.peek() == "{":
            if in_variable:
                raise self.fail("variables cannot nest")
            self.parse_variable()
        else:
            self.segments.append(self.literal())

    def parse_variable(self) -> None:
        self.pos += 1  # '{'
        path = [self.ident()]
        while self.peek() == ".":
            self.pos += 1
            path.append(self.ident())
        start = len(self.segments)
        if self.peek() == "=":
            self.pos += 1
            self.parse_segments(in_variable=True)
        else:
            self.segments.append(WILDCARD)
        if self.peek() != "}":
            raise self.fail("expected '}'")
        self.pos += 1
        span = self.segments[start:]
        multi = len(span) > 1 or DOUBLE_WILDCARD in span
        self.variables.append(Variable(tuple(path), start, len(self.segments), multi))

    def ident(self) -> str:
        m = _IDENT.match(self.text, self.pos)
        if m is None:
            raise self.fail("expected a field name")
        self.pos = m.end()
        return m.group()

    def literal(self) -> str:
        m = _LITERAL.match(self.text, self.pos)
        if m is None:
            raise self.fail("expected a literal segment")
        self.pos = m.end()
        return m.group()
