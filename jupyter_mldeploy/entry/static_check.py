"""Static checks of an entry script (``score.py``), by parsing it with :mod:`ast`, never importing it.

The scoring server (like azureml-inference-server-http 1.5) refuses at start-up a script without
``init``/``run``, a ``run`` with ``*args``, ``**kwargs`` or positional-only parameters or with no input,
and a ``run`` decorated with both ``@rawhttp`` and ``@input_schema``. Those rules are written once, in
:mod:`jupyter_mldeploy.server.script_rules`; the server applies them to the imported script and this module
applies the same functions to the parse tree, so the two cannot drift. Checking here, before any process
starts, turns a failed deployment and a log to read into one clear line at the call site; parsing instead
of importing keeps the user's code (and its heavy imports, or side effects) out of the caller's process:
the notebook kernel, the CLI or the Jupyter server.

A few checks are this module's own, because the server has no rule for them but the script would fail
anyway, later and less clearly: an ``init`` that requires arguments (``TypeError`` at start-up),
inference-schema decorators without their arguments or naming a parameter ``run`` lacks (errors at import
or on the first request), ``@rawhttp()`` called with arguments, and a ``run`` that is a class.
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass
from pathlib import Path

from jupyter_mldeploy.errors import InvalidArgument, NotFound
from jupyter_mldeploy.server import script_rules
from jupyter_mldeploy.server.script_rules import REQUEST_HEADERS, Rule, RunParameter, Violation

#: Decorator names from inference-schema (``inference_schema.schema_decorators``).
_INPUT_SCHEMA = "input_schema"
_OUTPUT_SCHEMA = "output_schema"
#: Decorator name from ``azureml.contrib.services.aml_request``.
_RAWHTTP = "rawhttp"


@dataclass(frozen=True)
class EntryScriptCheck:
    """What a static look at an entry script found.

    Attributes:
        path: The script checked (absolute).
        problems: One clear line per problem (each names the rule and the fix); empty when the script
            passes every check.
        has_init: ``init`` is defined (by ``def``, assignment or import) at module level.
        has_run: ``run`` is defined at module level.
        run_parameters: ``run``'s parameter names in order (empty when ``run`` is not a plain ``def``).
        uses_schema: ``run`` carries ``@input_schema`` or ``@output_schema`` (inference-schema).
        input_parameters: Parameter names declared by ``@input_schema`` decorators, in order.
        has_output_schema: ``run`` carries ``@output_schema``.
        uses_rawhttp: ``run`` carries ``@rawhttp``: it receives the request object.
        accepts_request_headers: ``run`` has a ``request_headers`` parameter.
        is_async: ``run`` is an ``async def``.
        broken_rules: Codes of the :mod:`~jupyter_mldeploy.server.script_rules` rules the server would
            refuse the script for (e.g. ``"variadic-run"``).
    """

    path: Path
    problems: tuple[str, ...] = ()
    has_init: bool = False
    has_run: bool = False
    run_parameters: tuple[str, ...] = ()
    uses_schema: bool = False
    input_parameters: tuple[str, ...] = ()
    has_output_schema: bool = False
    uses_rawhttp: bool = False
    accepts_request_headers: bool = False
    is_async: bool = False
    broken_rules: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def raise_for_problems(self) -> None:
        """Raise when a problem was found.

        Raises:
            InvalidArgument: Naming the script and listing every problem, one per line.
        """
        if self.problems:
            lines = "\n".join(f"  - {problem}" for problem in self.problems)
            raise InvalidArgument(f"Entry script {self.path} cannot be served:\n{lines}")

    @property
    def input_mode(self) -> str:
        """How the server will call ``run``: ``"raw"``, ``"object"`` or ``"string"`` (the server's own rule)."""
        return script_rules.input_mode(self.uses_rawhttp, self.uses_schema)

    def features(self) -> dict[str, bool]:
        """Return the detected features as a JSON-safe dict (``schema``, ``rawhttp``, ``request_headers``)."""
        return {
            "schema": self.uses_schema,
            "rawhttp": self.uses_rawhttp,
            "request_headers": self.accepts_request_headers,
        }


def _decorator_name(node: ast.expr) -> str | None:
    """Return the last dotted name of a decorator: ``input_schema`` for ``@sd.input_schema(...)``."""
    target = node.func if isinstance(node, ast.Call) else node
    if isinstance(target, ast.Name):
        return target.id
    if isinstance(target, ast.Attribute):
        return target.attr
    return None


def _module_level_names(tree: ast.Module) -> dict[str, ast.AST]:
    """Map each name bound at module level (def, class, assignment, import) to its last binding."""
    bound: dict[str, ast.AST] = {}

    def visit(statements: list[ast.stmt]) -> None:
        for stmt in statements:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                bound[stmt.name] = stmt
            elif isinstance(stmt, ast.Assign):
                for target in stmt.targets:
                    for name in ast.walk(target):
                        if isinstance(name, ast.Name):
                            bound[name.id] = stmt
            elif isinstance(stmt, (ast.AnnAssign, ast.AugAssign)) and isinstance(stmt.target, ast.Name):
                bound[stmt.target.id] = stmt
            elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
                for alias in stmt.names:
                    bound[(alias.asname or alias.name).split(".")[0]] = stmt
            elif isinstance(stmt, (ast.If, ast.Try)):
                # ``try: from x import run`` / ``if cond: def run`` still define the name at import time.
                visit(stmt.body)
                visit(stmt.orelse)
                for handler in getattr(stmt, "handlers", []):
                    visit(handler.body)
                visit(getattr(stmt, "finalbody", []))
            elif isinstance(stmt, ast.With):
                visit(stmt.body)

    visit(tree.body)
    return bound


def _parameters(args: ast.arguments) -> list[RunParameter]:
    """``run``'s parameters in signature order, described as the server describes them."""
    found = [RunParameter(a.arg, script_rules.POSITIONAL_ONLY) for a in args.posonlyargs]
    found += [RunParameter(a.arg, script_rules.POSITIONAL_OR_KEYWORD) for a in args.args]
    if args.vararg is not None:
        found.append(RunParameter(args.vararg.arg, script_rules.VAR_POSITIONAL))
    found += [RunParameter(a.arg, script_rules.KEYWORD_ONLY) for a in args.kwonlyargs]
    if args.kwarg is not None:
        found.append(RunParameter(args.kwarg.arg, script_rules.VAR_KEYWORD))
    return found


def _problem(where: str, violation: Violation) -> str:
    """One report line for a broken server rule: where, what is wrong, the fix."""
    rule: Rule = violation.rule
    title = rule.title.format(detail=violation.detail)
    return f"{where} {title}: {rule.fix}" if where else f"{title}: {rule.fix}"


def _check_run(
    func: ast.FunctionDef | ast.AsyncFunctionDef, problems: list[str], broken: list[str]
) -> dict[str, object]:
    """Apply the server's rules to ``run``'s signature and decorators; append problems; return features."""
    parameters = _parameters(func.args)
    names = [p.name for p in parameters if p.kind not in (script_rules.VAR_POSITIONAL, script_rules.VAR_KEYWORD)]
    where = f"run (line {func.lineno})"
    input_params: list[str] = []
    has_input = has_output = rawhttp = False
    for deco in func.decorator_list:
        name = _decorator_name(deco)
        if name == _INPUT_SCHEMA:
            has_input = True
            param = _check_input_schema(deco, names, problems)
            if param is not None:
                if param in input_params:
                    problems.append(f"@input_schema names parameter '{param}' twice on run; keep one.")
                input_params.append(param)
        elif name == _OUTPUT_SCHEMA:
            has_output = True
            _check_output_schema(deco, problems)
        elif name == _RAWHTTP:
            rawhttp = True
            if isinstance(deco, ast.Call):
                problems.append(f"@rawhttp (line {deco.lineno}) takes no arguments: write @rawhttp, not @rawhttp().")
    for violation in script_rules.signature_violations(parameters, rawhttp, has_input or has_output):
        problems.append(_problem(where, violation))
        broken.append(violation.rule.code)
    return {
        "run_parameters": tuple(names),
        "uses_schema": has_input or has_output,
        "input_parameters": tuple(input_params),
        "has_output_schema": has_output,
        "uses_rawhttp": rawhttp,
        "accepts_request_headers": REQUEST_HEADERS in names,
        "is_async": isinstance(func, ast.AsyncFunctionDef),
    }


def _check_input_schema(deco: ast.expr, run_params: list[str], problems: list[str]) -> str | None:
    """Check ``@input_schema(param_name, param_type, ...)``; return the literal param name when known."""
    line = getattr(deco, "lineno", "?")
    if not isinstance(deco, ast.Call):
        problems.append(
            f"@input_schema (line {line}) needs arguments: @input_schema('data', NumpyParameterType(sample))."
        )
        return None
    keywords = {k.arg: k.value for k in deco.keywords if k.arg is not None}
    name_node = deco.args[0] if deco.args else keywords.get("param_name")
    type_given = len(deco.args) >= 2 or "param_type" in keywords
    if name_node is None or not type_given:
        problems.append(
            f"@input_schema (line {line}) needs a parameter name and a type: "
            "@input_schema('data', NumpyParameterType(sample))."
        )
    if isinstance(name_node, ast.Constant):
        if not isinstance(name_node.value, str):
            problems.append(f"@input_schema (line {line}): the parameter name must be a string, not {name_node.value!r}.")
            return None
        param = name_node.value
        if param not in run_params:
            shown = ", ".join(run_params) or "none"
            problems.append(
                f"@input_schema (line {line}) declares parameter '{param}' but run has no such parameter "
                f"(run's parameters: {shown}); rename one to match."
            )
        return param
    return None


def _check_output_schema(deco: ast.expr, problems: list[str]) -> None:
    line = getattr(deco, "lineno", "?")
    if not isinstance(deco, ast.Call) or (not deco.args and not any(k.arg == "output_type" for k in deco.keywords)):
        problems.append(
            f"@output_schema (line {line}) needs a type: @output_schema(NumpyParameterType(sample_output))."
        )


def check_source(source: str, path: str | os.PathLike[str] = "<entry script>") -> EntryScriptCheck:
    """Check an entry script's source text.

    Args:
        source: The script's text.
        path: Where the text came from, recorded in the result and used in messages.

    Returns:
        EntryScriptCheck: The problems found and the features detected.
    """
    resolved = Path(path)
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as exc:
        detail = f"line {exc.lineno}: {exc.msg}" if exc.lineno else str(exc.msg)
        return EntryScriptCheck(path=resolved, problems=(f"The script does not parse ({detail}); fix the syntax.",))

    bound = _module_level_names(tree)
    problems: list[str] = []
    broken: list[str] = []
    has_init = "init" in bound
    has_run = "run" in bound
    for name, rule in (("init", script_rules.NO_INIT), ("run", script_rules.NO_RUN)):
        if name not in bound:
            problems.append(_problem("", Violation(rule)))
            broken.append(rule.code)
    init_node = bound.get("init")
    if isinstance(init_node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        init_args = init_node.args
        required = len(init_args.posonlyargs) + len(init_args.args) - len(init_args.defaults)
        required += sum(1 for d in init_args.kw_defaults if d is None)
        if required:
            problems.append(
                f"init (line {init_node.lineno}) requires arguments, but the server calls init() with none; "
                "remove them or give them defaults."
            )

    features: dict[str, object] = {}
    run_node = bound.get("run")
    if isinstance(run_node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        features = _check_run(run_node, problems, broken)
    elif isinstance(run_node, ast.ClassDef):
        problems.append(f"run (line {run_node.lineno}) is a class; define run as a function.")
    return EntryScriptCheck(
        path=resolved, problems=tuple(problems), has_init=has_init, has_run=has_run, broken_rules=tuple(broken),
        **features,  # type: ignore[arg-type]
    )


def check_entry_script(path: str | os.PathLike[str]) -> EntryScriptCheck:
    """Check an entry script file without importing it.

    Args:
        path: The ``score.py`` to check.

    Returns:
        EntryScriptCheck: ``problems`` lists what the scoring server would refuse, one line each.

    Raises:
        NotFound: When the file does not exist (the message names the path).
        InvalidArgument: When ``path`` is a folder or not UTF-8 text.
    """
    script = Path(path).expanduser().resolve()
    if not script.exists():
        raise NotFound(f"Entry script {script} does not exist; check entry_script and source_directory.")
    if not script.is_file():
        raise InvalidArgument(f"Entry script {script} is a folder; point entry_script at the score.py file.")
    try:
        source = script.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidArgument(f"Entry script {script} is not UTF-8 text ({exc}); save it as UTF-8.") from exc
    return check_source(source, script)


__all__ = ["EntryScriptCheck", "check_entry_script", "check_source"]
