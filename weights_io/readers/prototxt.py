"""The protobuf text format (Caffe's `.prototxt`), parsed without a schema and without `protobuf`.

`parse(text)` gives a message as a dict `{field: [value, ...]}`: every field maps to the list of its
values in file order, because without the schema a field written once cannot be told from a repeated
field written once. A value is a nested message (a dict of the same form), a `str` (a quoted string,
escapes resolved), an `int`, a `float`, `True`/`False`, or an `Enum` (a bare identifier such as
`CONVOLUTION` or `MAX`, kept apart from the string "MAX"). What a field means is the caller's (`caffe`).

Accepted: `#` comments; `name: value`, `name { ... }`, `name: { ... }`, `name < ... >`; `name: [a, b]`
lists; adjacent quoted strings concatenated; C escapes (`\\n`, `\\"`, octal `\\101`, hex `\\x41`,
`\\u00e9`); decimal, hex, octal and float numbers (`1e-4`, `.5`, `2.0f`, `-inf`, `nan`); optional `,`
or `;` after a field. Anything else raises `TextFormatError` with its line and column. Nesting is
bounded (`MAX_DEPTH`), so a hostile file cannot exhaust the stack.
"""

from __future__ import annotations

import re

MAX_DEPTH = 100

_TOKEN = re.compile(r"""
    (?P<space>[ \t\r\n\f\v]+|\#[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<number>-?\s*(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?[fF]?)(?![\w.]))
  | (?P<word>-?[A-Za-z_][\w.]*)
  | (?P<punct>[{}<>\[\]:,;])
""", re.X)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v", "\\": "\\",
            "'": "'", '"': '"', "?": "?"}
_FLOAT_WORDS = {"inf": float("inf"), "infinity": float("inf"), "nan": float("nan")}


class TextFormatError(ValueError):
    """A prototxt that is not valid protobuf text format; the message says where."""


class Enum(str):
    """A bare identifier value (an enum name), distinct from a quoted string of the same text."""

    def __repr__(self):
        return f"Enum({str(self)!r})"


def _tokens(text):
    """(kind, text, line, column) of every token but spaces and comments."""
    pos, line, line_start = 0, 1, 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise TextFormatError(f"line {line}, column {pos - line_start + 1}: unexpected {text[pos]!r}")
        kind = match.lastgroup
        if kind != "space":
            yield kind, match.group(), line, pos - line_start + 1
        newlines = match.group().count("\n")
        if newlines:
            line += newlines
            line_start = match.start() + match.group().rindex("\n") + 1
        pos = match.end()


def _unescape(body, where):
    out, i = bytearray(), 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out += c.encode("utf-8")
            i += 1
            continue
        e = body[i + 1]  # the token pattern guarantees a character after each backslash
        if e in _ESCAPES:
            out += _ESCAPES[e].encode()
            i += 2
        elif e in "01234567":
            digits = re.match(r"[0-7]{1,3}", body[i + 1:]).group()
            out.append(int(digits, 8) & 0xFF)
            i += 1 + len(digits)
        elif e in "xX":
            digits = re.match(r"[0-9a-fA-F]{1,2}", body[i + 2:])
            if digits is None:
                raise TextFormatError(f"{where}: a \\x escape without hex digits")
            out.append(int(digits.group(), 16))
            i += 2 + len(digits.group())
        elif e in "uU":
            size = 4 if e == "u" else 8
            digits = body[i + 2:i + 2 + size]
            if not re.fullmatch(r"[0-9a-fA-F]{%d}" % size, digits) or int(digits, 16) > 0x10FFFF:
                raise TextFormatError(f"{where}: a bad \\{e} escape")
            out += chr(int(digits, 16)).encode("utf-8", "surrogatepass")
            i += 2 + size
        else:
            raise TextFormatError(f"{where}: unknown escape \\{e}")
    return out.decode("utf-8", "replace")


def _number(text, where):
    text = text.replace(" ", "").replace("\t", "")
    negative = text.startswith("-")
    body = text[1:] if negative else text
    try:
        if body[:2] in ("0x", "0X"):
            value = int(body, 16)
        elif re.fullmatch(r"0[0-7]+", body):
            value = int(body, 8)
        elif re.fullmatch(r"\d+", body):
            value = int(body)
        else:
            value = float(body.rstrip("fF"))
    except ValueError:
        raise TextFormatError(f"{where}: not a number {text!r}") from None
    return -value if negative else value


class _Parser:
    def __init__(self, text):
        self.tokens = list(_tokens(text))
        self.pos = 0

    def peek(self):
        return self.tokens[self.pos] if self.pos < len(self.tokens) else ("end", "", 0, 0)

    def take(self):
        token = self.peek()
        self.pos += 1
        return token

    def where(self, token=None):
        _, _, line, column = token or self.peek()
        return f"line {line}, column {column}" if line else "at the end of the file"

    def message(self, close, depth):
        if depth > MAX_DEPTH:
            raise TextFormatError(f"{self.where()}: messages nested deeper than {MAX_DEPTH}")
        out = {}
        while True:
            kind, text, *_ = self.peek()
            if (kind == "punct" and text == close) or (kind == "end" and close is None):
                if close is not None:
                    self.take()
                return out
            if kind != "word" or text.startswith("-"):
                raise TextFormatError(f"{self.where()}: expected a field name, found {text or 'the end'!r}")
            self.take()
            colon = self.peek()[:2] == ("punct", ":")
            if colon:
                self.take()
            values = out.setdefault(text, [])
            if self.peek()[:2] == ("punct", "[") and colon:
                self.take()
                while self.peek()[:2] != ("punct", "]"):
                    values.append(self.value(depth))
                    if self.peek()[:2] == ("punct", ","):
                        self.take()
                    elif self.peek()[:2] != ("punct", "]"):
                        raise TextFormatError(f"{self.where()}: expected ',' or ']' in a list")
                self.take()
            elif self.peek()[0] == "punct" and self.peek()[1] in "{<" or colon:
                values.append(self.value(depth))
            else:
                raise TextFormatError(f"{self.where()}: expected ':' or '{{' after {text!r}")
            if self.peek()[:2] in (("punct", ","), ("punct", ";")):
                self.take()

    def value(self, depth):
        token = self.take()
        kind, text = token[:2]
        if kind == "punct" and text in "{<":
            return self.message("}" if text == "{" else ">", depth + 1)
        if kind == "string":
            parts = [_unescape(text[1:-1], self.where(token))]
            while self.peek()[0] == "string":
                following = self.take()
                parts.append(_unescape(following[1][1:-1], self.where(following)))
            return "".join(parts)
        if kind == "number":
            return _number(text, self.where(token))
        if kind == "word":
            lowered = text.lstrip("-").lower()
            if lowered in _FLOAT_WORDS:
                return -_FLOAT_WORDS[lowered] if text.startswith("-") else _FLOAT_WORDS[lowered]
            if text in ("true", "True"):
                return True
            if text in ("false", "False"):
                return False
            if not text.startswith("-"):
                return Enum(text)
        raise TextFormatError(f"{self.where(token)}: expected a value, found {text or 'the end'!r}")


def parse(text):
    """The message in protobuf text `text` as `{field: [values]}` (see the module docstring)."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", "replace")
    return _Parser(text).message(None, 0)
