"""The entry-script contract's rules, written once: what makes a ``score.py`` servable and how ``run()`` is fed.

Two readers apply this one table:

* the scoring server (:class:`~jupyter_mldeploy.server.user_script.UserScript`), on the imported script
  and ``inspect.signature(run)``; it raises the rule's :attr:`Rule.message`, azmlinfsrv 1.5's words;
* the static pre-check (``jupyter_mldeploy.entry.static_check``), on the script's parse tree, before any
  process starts and without importing the script into the caller; it reports the same rule as one line,
  :attr:`Rule.title` and :attr:`Rule.fix`.

Both describe ``run``'s parameters as :class:`RunParameter` values and call :func:`signature_violations`
and :func:`input_mode`, so the two cannot disagree about which scripts the server refuses or how it calls
them. Standard library only (this package imports nothing else of ours).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass

#: The optional ``run`` parameter the server fills with the request headers (a ``dict``).
REQUEST_HEADERS = "request_headers"

#: ``run`` receives the request object (``@rawhttp``).
RAW = "raw"
#: ``run`` receives the JSON object's keys as keyword arguments (inference-schema's ``@input_schema``).
OBJECT = "object"
#: ``run`` receives the body as one ``str`` (undecorated).
STRING = "string"

POSITIONAL_ONLY = "positional_only"
POSITIONAL_OR_KEYWORD = "positional_or_keyword"
VAR_POSITIONAL = "var_positional"
KEYWORD_ONLY = "keyword_only"
VAR_KEYWORD = "var_keyword"


@dataclass(frozen=True)
class Rule:
    """One rule of the contract.

    Attributes:
        code: A stable identifier (e.g. ``"variadic-run"``).
        message: What the server says when the rule is broken (azmlinfsrv 1.5's text; ``{path}`` is the
            script's path).
        title: What is wrong, for the static check's one-line report (``{detail}`` is the offending part).
        fix: What to change, for the same report.
    """

    code: str
    message: str
    title: str
    fix: str


NO_INIT = Rule(
    "no-init",
    "User script at {path} does not have a init() function defined.",
    "No init() function",
    "define init() at module level to load the model once per worker.",
)
NO_RUN = Rule(
    "no-run",
    "User script at {path} does not have a run() function defined.",
    "No run() function",
    "define run(raw_data) at module level to answer /score requests.",
)
VARIADIC_RUN = Rule(
    "variadic-run",
    "run() cannot accept positional-only arguments, *args, or **kwargs.",
    "takes {detail}",
    "the server passes inputs by name, so remove it.",
)
NO_INPUT = Rule(
    "no-input",
    "run() needs to accept an argument for input data.",
    "takes no input",
    "define it as run(raw_data) (or name the input parameters).",
)
ONLY_REQUEST_HEADERS = Rule(
    "only-request-headers",
    'run() needs to accept an argument other than "request_headers".',
    "takes only request_headers",
    "add an input parameter before it: run(raw_data, request_headers).",
)
RAWHTTP_WITH_SCHEMA = Rule(
    "rawhttp-with-schema",
    "run() cannot be decorated with both @rawhttp and @input_schema",
    "is decorated with both @rawhttp and an inference-schema decorator, which the server refuses",
    "@rawhttp gives run the raw request, so remove the inference-schema decorators (@input_schema and "
    "@output_schema), or remove @rawhttp to get typed inputs.",
)

#: Every rule the server enforces when it loads a script, in the order it checks them.
RULES: tuple[Rule, ...] = (NO_INIT, NO_RUN, VARIADIC_RUN, NO_INPUT, ONLY_REQUEST_HEADERS, RAWHTTP_WITH_SCHEMA)


@dataclass(frozen=True)
class RunParameter:
    """One parameter of ``run``, as either reader sees it.

    Attributes:
        name: The parameter name.
        kind: One of :data:`POSITIONAL_ONLY`, :data:`POSITIONAL_OR_KEYWORD`, :data:`VAR_POSITIONAL`,
            :data:`KEYWORD_ONLY`, :data:`VAR_KEYWORD` (``inspect.Parameter.kind`` names, lower case).
    """

    name: str
    kind: str

    @classmethod
    def from_inspect(cls, parameter: inspect.Parameter) -> RunParameter:
        """Describe an ``inspect.Parameter``."""
        return cls(parameter.name, parameter.kind.name.lower())

    @property
    def shown(self) -> str:
        """The parameter as the static check names it: ``*args``, ``**kwargs``, ``data before '/'``, ``data``."""
        if self.kind == VAR_POSITIONAL:
            return f"*{self.name}"
        if self.kind == VAR_KEYWORD:
            return f"**{self.name}"
        if self.kind == POSITIONAL_ONLY:
            return f"{self.name} before '/'"
        return self.name


@dataclass(frozen=True)
class Violation:
    """A broken rule and what broke it.

    Attributes:
        rule: The rule.
        detail: The offending part (e.g. ``"*args"``), or ``""``.
    """

    rule: Rule
    detail: str = ""


def input_parameters(parameters: Sequence[RunParameter]) -> list[RunParameter]:
    """Return ``run``'s input parameters: every named one except ``request_headers``."""
    return [p for p in parameters if p.name != REQUEST_HEADERS and p.kind not in (VAR_POSITIONAL, VAR_KEYWORD)]


def signature_violations(
    parameters: Sequence[RunParameter], rawhttp: bool, schema_decorated: bool
) -> list[Violation]:
    """Apply the server's rules to ``run``'s signature and decorators.

    Args:
        parameters: ``run``'s parameters in order.
        rawhttp: ``run`` is decorated with ``@rawhttp``.
        schema_decorated: ``run`` carries an inference-schema decorator (``@input_schema`` or
            ``@output_schema``: azmlinfsrv asks ``is_schema_decorated``, which is true for either).

    Returns:
        list[Violation]: In the server's order (it reports the first); one per offending parameter for
        :data:`VARIADIC_RUN`; empty when the server accepts the signature.
    """
    found = [
        Violation(VARIADIC_RUN, p.shown)
        for p in parameters
        if p.kind in (POSITIONAL_ONLY, VAR_POSITIONAL, VAR_KEYWORD)
    ]
    if not input_parameters(parameters):
        headers_only = any(p.name == REQUEST_HEADERS for p in parameters)
        found.append(Violation(ONLY_REQUEST_HEADERS if headers_only else NO_INPUT))
    if rawhttp and schema_decorated:
        found.append(Violation(RAWHTTP_WITH_SCHEMA))
    return found


def input_mode(rawhttp: bool, schema_decorated: bool) -> str:
    """Return how the server calls ``run``: :data:`RAW`, :data:`OBJECT` or :data:`STRING`.

    Args:
        rawhttp: ``run`` is decorated with ``@rawhttp``.
        schema_decorated: ``run`` carries an inference-schema decorator.
    """
    if rawhttp:
        return RAW
    return OBJECT if schema_decorated else STRING
