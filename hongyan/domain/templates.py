"""Content templates: the whitelist of texts an account may send.

Syntax.  A template is literal text with variables, e.g.
``【公司】您的验证码是{code}，{minutes}分钟内有效``.  A variable is written
``{name}``, ``${name}`` (the form Aliyun and Huawei Cloud use) or
``{{name}}`` (mustache style); all three mean the same.  A name is a run of
word characters, so Tencent Cloud's numbered ``{1}`` and Chinese names such
as ``{姓名}`` work too.  Yunpian's ``#code#`` is not accepted: ``#话题#`` is
ordinary text in Chinese marketing messages.  A name used twice must get the
same value both times.  Two variables must be separated by literal text --
``{a}{b}`` is refused, since nothing would tell where one value ends.

Values.  A variable matches 1 to ``max_var_len`` (32 by default)
characters, with no line break and no 【 or 】, so a value can neither add
lines nor pass off a second signature.  When a text can be split in more than
one way, a value ends where the literal text after it first appears: a value
never contains the text that follows it.  Only the last variable is exempt,
as the end of the content bounds it: in ``{a}元`` the value of "5元3元" is
"5元3".  The rule is what keeps matching linear in the content -- no
backtracking from one variable into an earlier one, whatever a sender
submits.

Normalisation, applied to templates and contents alike: surrounding
whitespace is stripped and CRLF / CR line ends become LF.  Everything else
must match exactly -- full-width and half-width punctuation differ.

Choice.  When several templates match, the one with the most literal
characters wins (the most specific); among equals, the first given.

Speed.  Each template is compiled to one regex when the set is built.  A
content is tried only against the templates whose first literal chunk starts
it (one dict lookup per distinct chunk length), or, for templates that start
with a variable, whose last literal chunk ends it; only templates with a
variable at both ends are tried for every content.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

MAX_VAR_LEN = 32

_VARIABLE = re.compile(r"\{\{(\w+)\}\}|\$\{(\w+)\}|\{(\w+)\}")
# What a value may not contain: line breaks, and the signature brackets.
_VALUE_CHAR = r"[^\r\n【】]"


def normalise(text: str) -> str:
    """The form templates and contents are compared in."""
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


def _parse(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(literal chunks, variable names): chunks[i] comes before names[i], chunks[-1] after the last."""
    chunks, names, pos = [], [], 0
    for m in _VARIABLE.finditer(text):
        chunks.append(text[pos:m.start()])
        names.append(next(g for g in m.groups() if g is not None))
        pos = m.end()
    chunks.append(text[pos:])
    if any(not chunk for chunk in chunks[1:-1]):
        raise ValueError(f"two variables with no text between them in {text!r}")
    return tuple(chunks), tuple(names)


@dataclass(frozen=True, slots=True)
class Template:
    id: str | int
    text: str
    literals: tuple[str, ...] = field(init=False, repr=False, compare=False)
    variables: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        text = normalise(self.text)
        if not text:
            raise ValueError(f"template {self.id!r} is empty")
        literals, variables = _parse(text)
        object.__setattr__(self, "text", text)
        object.__setattr__(self, "literals", literals)
        object.__setattr__(self, "variables", variables)

    @property
    def prefix(self) -> str:
        return self.literals[0]

    @property
    def suffix(self) -> str:
        return self.literals[-1] if self.variables else ""

    @property
    def literal_length(self) -> int:
        return sum(map(len, self.literals))

    def render(self, values: Mapping[str, str]) -> str:
        """The text with each variable replaced by its value (KeyError for a missing one)."""
        out = [self.literals[0]]
        for name, chunk in zip(self.variables, self.literals[1:]):
            out += (values[name], chunk)
        return "".join(out)

    def pattern(self, max_var_len: int = MAX_VAR_LEN) -> str:
        """A regex for this template; value i is in group ``v<i>`` of its first use.

        Every variable but the last sits in an atomic group with the literal
        after it: it ends at that literal's first occurrence and is never
        revisited, which is what keeps matching linear.
        """
        out, first = [re.escape(self.literals[0])], {}
        last = len(self.variables) - 1
        for i, (name, chunk) in enumerate(zip(self.variables, self.literals[1:])):
            if name in first:
                value = f"(?P=v{first[name]})"
            else:
                first[name] = len(first)
                value = f"(?P<v{first[name]}>{_VALUE_CHAR}{{1,{max_var_len}}}?)"
            step = value + re.escape(chunk)
            out.append(step if i == last else f"(?>{step})")
        return "".join(out)


@dataclass(frozen=True, slots=True)
class TemplateMatch:
    template: Template
    values: dict[str, str]


@dataclass(frozen=True, slots=True)
class _Compiled:
    rank: tuple[int, int]  # sorts the preferred template first
    template: Template
    regex: re.Pattern[str]
    names: tuple[str, ...]  # distinct variable names, in group order

    def match(self, content: str) -> TemplateMatch | None:
        m = self.regex.fullmatch(content)
        if m is None:
            return None
        return TemplateMatch(self.template, {name: m.group(f"v{i}") for i, name in enumerate(self.names)})


def _rank(entry: _Compiled) -> tuple[int, int]:
    return entry.rank


def _index(entries: Iterable[_Compiled], key: Callable[[Template], str],
           ) -> tuple[dict[str, list[_Compiled]], tuple[int, ...]]:
    """Entries grouped by ``key``, and the distinct key lengths, longest first."""
    by_key: dict[str, list[_Compiled]] = {}
    for entry in entries:
        by_key.setdefault(key(entry.template), []).append(entry)
    return by_key, tuple(sorted({len(k) for k in by_key}, reverse=True))


class TemplateSet:
    """The templates one account may send; ``match`` tells which one a content is."""

    __slots__ = ("templates", "max_var_len", "_by_prefix", "_prefix_lengths",
                 "_by_suffix", "_suffix_lengths", "_anywhere")

    def __init__(self, templates: Iterable[Template], max_var_len: int = MAX_VAR_LEN) -> None:
        if max_var_len < 1:
            raise ValueError("max_var_len must be at least 1")
        self.templates = tuple(templates)
        self.max_var_len = max_var_len
        compiled = [
            _Compiled((-t.literal_length, order), t, re.compile(t.pattern(max_var_len)),
                      tuple(dict.fromkeys(t.variables)))
            for order, t in enumerate(self.templates)
        ]
        self._by_prefix, self._prefix_lengths = _index((c for c in compiled if c.template.prefix),
                                                       lambda t: t.prefix)
        self._by_suffix, self._suffix_lengths = _index(
            (c for c in compiled if not c.template.prefix and c.template.suffix), lambda t: t.suffix)
        self._anywhere = [c for c in compiled if not c.template.prefix and not c.template.suffix]

    def __len__(self) -> int:
        return len(self.templates)

    def _candidates(self, content: str) -> list[_Compiled]:
        found = list(self._anywhere)
        size = len(content)
        by_prefix, by_suffix = self._by_prefix, self._by_suffix
        for n in self._prefix_lengths:
            if n <= size and (hit := by_prefix.get(content[:n])):
                found += hit
        for n in self._suffix_lengths:
            if n <= size and (hit := by_suffix.get(content[-n:])):
                found += hit
        if len(found) > 1:
            found.sort(key=_rank)
        return found

    def match(self, content: str) -> TemplateMatch | None:
        """The preferred template ``content`` fits, with the variables' values; None if none fits."""
        content = normalise(content)
        for candidate in self._candidates(content):
            if (found := candidate.match(content)) is not None:
                return found
        return None

    def fits(self, content: str) -> bool:
        """Whether ``content`` fits any of the templates (accept asks only that, per request)."""
        content = normalise(content)
        return any(c.regex.fullmatch(content) is not None for c in self._candidates(content))
