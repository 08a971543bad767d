"""The options table, and the effective options of a run resolved from every source.

Every option is described once in ``OPTIONS`` (name, type, default, help, environment
variables, command-line flags, ``install_hook`` keyword); the CLI builds its click options
from it and the API takes its keywords from it.  Sources, later wins:

1. the table's defaults;
2. ``[tool.ctinstrument]`` in the nearest ``pyproject.toml`` (searched upward from the
   script's directory for the CLI with a script, from the working directory for ``-m`` and
   the API).  The nearest ``pyproject.toml`` is the project's, whether it has the table or
   not; a file that cannot be parsed, an unknown key or a value of the wrong type is an
   error.  Paths in it (``out_dir``, path patterns) are relative to its directory;
3. the environment: ``CTINSTRUMENT_<NAME>`` (lists comma-separated, booleans
   1/0/true/false/yes/no/on/off); an empty variable counts as unset.  For ``out_dir``,
   ``$CODETRACER_DB_TRACE_PATH`` (set by CodeTracer when it launches a recorder) wins over
   ``$CTINSTRUMENT_OUT_DIR``;
4. what the caller gave explicitly on the command line or to ``install_hook``.

Each source replaces the value of the earlier ones (lists are not merged).  This module
never imports the program's code and only reads files; mistakes raise ``UsageError``
naming where the bad value came from.
"""

import os

from .errors import UsageError

LIST, STR, BOOL = "list", "str", "bool"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
TABLE = "[tool.ctinstrument]"
ENV_PREFIX = "CTINSTRUMENT_"


class Option:
    """One option: ``name`` (the key in ``[tool.ctinstrument]`` and in ``settings``),
    ``kind`` (LIST, STR or BOOL), ``default`` (``api_default`` where ``install_hook``
    differs), ``help``, ``env`` (variables read, later wins), ``flags`` (click parameter
    declarations; a boolean has an on/off pair), ``metavar`` and ``api`` (the keyword of
    ``install_hook``)."""

    __slots__ = ("name", "kind", "default", "api_default", "help", "env", "flags",
                 "metavar", "api")

    def __init__(self, name, kind, default, help, flags, env=None, metavar=None, api=None,
                 api_default=None):
        self.name = name
        self.kind = kind
        self.default = default
        self.api_default = default if api_default is None else api_default
        self.help = help
        self.env = env or (ENV_PREFIX + name.upper(),)
        self.flags = flags
        self.metavar = metavar
        self.api = api or name

    def __repr__(self):
        return "Option(%r)" % self.name


OPTIONS = (
    Option("include", LIST, (), "Modules, globs, paths or functions (pkg.mod:Class.method) to "
           "record; a package covers its submodules (default: the script and the modules "
           "beside it).", ("-i", "--include"), metavar="PATTERN", api="patterns"),
    Option("exclude", LIST, (), "Modules, globs or paths never to record (wins over include).",
           ("--exclude",), metavar="PATTERN"),
    Option("out_dir", STR, "trace-out", "Trace directory ($CODETRACER_DB_TRACE_PATH wins "
           "over $CTINSTRUMENT_OUT_DIR).", ("-o", "--out-dir"),
           env=("CTINSTRUMENT_OUT_DIR", "CODETRACER_DB_TRACE_PATH"), metavar="DIR"),
    Option("redact", BOOL, True, "Record the values of variables whose names look like "
           "secrets as <redacted>.", ("--redact-secrets/--no-redact",)),
    Option("redact_names", LIST, (), "More variable, attribute and key names to redact.",
           ("--redact",), metavar="NAME"),
    Option("capture_output", BOOL, True, "Record what the program writes to stdout/stderr "
           "and reads from stdin.", ("--capture-output/--no-capture-output",),
           api_default=False),
    Option("paused", BOOL, False, "Start with recording off, until the program calls "
           "ctinstrument.start() or enters ctinstrument.record().", ("--paused/--no-paused",)),
    Option("explain", BOOL, False, "At the end, print for each imported module whether it "
           "was recorded and why (modules of the standard library and of big packages as "
           "counts).", ("--explain/--no-explain",)),
    Option("debug", BOOL, False, "Like --explain, listing every module, and print where each "
           "option came from.", ("--debug/--no-debug",)),
    Option("cache", BOOL, True, "Keep instrumented code in a private cache beside the "
           "ordinary .pyc files (never loaded by a plain interpreter).",
           ("--cache/--no-cache",)),
)
BY_NAME = {option.name: option for option in OPTIONS}
# Read by disabled.py before any option: known, so never warned about as unknown.
DISABLED_ENV = ENV_PREFIX + "DISABLED"
ENV_NAMES = {env for option in OPTIONS for env in option.env} | {DISABLED_ENV}


class Settings:
    """The effective options of a run: ``values`` (name -> value; lists are lists of
    strings, ``out_dir`` is absolute when it came from a file), ``origin`` (name -> the
    source that set it, ``"default"`` if none), ``sources`` (the sources that set anything,
    in precedence order: a pyproject.toml path, ``env:NAME``, ``"cli"`` or ``"api"``),
    ``config_file`` (the nearest pyproject.toml, or None) and ``warnings`` (lines to print)."""

    def __init__(self, values, origin, sources, config_file, warnings):
        self.values = values
        self.origin = origin
        self.sources = sources
        self.config_file = config_file
        self.warnings = warnings

    def __getitem__(self, name):
        return self.values[name]

    def as_metadata(self):
        """JSON-ready dict for ``trace_metadata.json``: the values and ``sources``."""
        data = {name: list(value) if isinstance(value, (list, tuple)) else value
                for name, value in self.values.items()}
        data["sources"] = list(self.sources)
        return data

    def describe(self):
        """One line per option: value and the source that set it (for --debug)."""
        return ["option %s = %r (%s)" % (name, self.values[name], self.origin[name])
                for name in self.values]


def find_pyproject(start_dir):
    """The nearest ``pyproject.toml`` in ``start_dir`` or above it, or None."""
    directory = os.path.abspath(start_dir)
    while True:
        candidate = os.path.join(directory, "pyproject.toml")
        if os.path.isfile(candidate):
            return candidate
        parent = os.path.dirname(directory)
        if parent == directory:
            return None
        directory = parent


def read_table(path):
    """The ``[tool.ctinstrument]`` table of ``path`` ({} if there is none); raises
    UsageError naming the file (and the line) if it cannot be read or parsed."""
    try:
        with open(path, "rb") as handle:
            text = handle.read().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError("cannot read %s: %s" % (path, getattr(exc, "strerror", None) or exc))
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # The message ends with "(at line L, column C)" or "(at end of document)".
        message = str(exc)
        if "line" not in message:
            message += " (line %d)" % max(1, len(text.splitlines()))
        raise UsageError("cannot parse %s: %s" % (path, message))
    tool = document.get("tool", {})
    table = tool.get("ctinstrument", {}) if isinstance(tool, dict) else {}
    if not isinstance(table, dict):
        raise UsageError("%s in %s must be a table, not %s"
                         % (TABLE, path, type(table).__name__))
    return table


def _suggest(word, candidates):
    import difflib
    close = difflib.get_close_matches(word, candidates, n=1)
    return " (did you mean %s?)" % close[0] if close else ""


def _check_list(value, where):
    if isinstance(value, str):
        value = [value]
    elif not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise UsageError("%s must be a list of strings, not %r" % (where, value))
    items = []
    for text in value:
        if not text.strip():
            raise UsageError("%s: empty value" % where)
        items.extend(part.strip() for part in text.split(",") if part.strip())
    return items


def _check(option, value, where):
    """``value`` checked and normalised for ``option``; raises UsageError naming ``where``."""
    if option.kind == LIST:
        return _check_list(value, where)
    if option.kind == BOOL:
        if not isinstance(value, bool):
            raise UsageError("%s must be true or false, not %r" % (where, value))
        return value
    if not isinstance(value, str) or not value:
        raise UsageError("%s must be a non-empty string, not %r" % (where, value))
    return value


def _env_value(option, variable, text):
    if option.kind == BOOL:
        word = text.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise UsageError("$%s must be one of 1/0/true/false/yes/no/on/off, not %r"
                         % (variable, text))
    return _check(option, text, "$" + variable)


def _anchor_patterns(patterns, base):
    """Path patterns (``./src``, ``app/jobs.py:main``) made relative to ``base``."""
    from .selection import is_path_pattern
    anchored = []
    for text in patterns:
        where, colon, qualname = text.rpartition(":") if ":" in text else (text, "", "")
        if is_path_pattern(where) and not os.path.isabs(where):
            text = os.path.join(base, where) + colon + qualname
        anchored.append(text)
    return anchored


def _validate_patterns(name, patterns, where):
    from .selection import split_patterns
    try:
        split_patterns(patterns, allow_function=name == "include")
    except UsageError as exc:
        raise UsageError("%s (%s)" % (exc, where))


def resolve(given, start_dir, frontend="cli", environ=None):
    """The effective ``Settings`` from the defaults, the nearest pyproject.toml above
    ``start_dir``, the environment (``environ``, default ``os.environ``) and ``given``
    (name -> value of the options the caller set explicitly; ``frontend`` is "cli" or
    "api").  Raises UsageError for a bad file, key, variable or value."""
    environ = os.environ if environ is None else environ
    values = {o.name: list(o.default) if o.kind == LIST else
              (o.api_default if frontend == "api" else o.default) for o in OPTIONS}
    origin = dict.fromkeys(values, "default")
    sources = []
    warnings = []

    config_file = find_pyproject(start_dir)
    if config_file is not None:
        table = read_table(config_file)
        base = os.path.dirname(config_file)
        seen = {}
        for key, value in table.items():
            name = key.replace("-", "_")
            option = BY_NAME.get(name)
            if option is None:
                raise UsageError("unknown option %r in %s of %s%s" % (
                    key, TABLE, config_file, _suggest(name, list(BY_NAME))))
            if name in seen:
                raise UsageError("option %r given twice (as %r and %r) in %s of %s"
                                 % (name, seen[name], key, TABLE, config_file))
            seen[name] = key
            where = "%s %s in %s" % (TABLE, key, config_file)
            value = _check(option, value, where)
            if name in ("include", "exclude"):
                value = _anchor_patterns(value, base)
                _validate_patterns(name, value, "from " + where)
            elif name == "out_dir":
                value = os.path.join(base, value)
            values[name] = value
            origin[name] = config_file
        if table:
            sources.append(config_file)

    for option in OPTIONS:
        for variable in option.env:
            text = environ.get(variable)
            if not text:
                continue
            value = _env_value(option, variable, text)
            if option.name in ("include", "exclude"):
                _validate_patterns(option.name, value, "from $" + variable)
            values[option.name] = value
            origin[option.name] = "env:" + variable
            sources.append("env:" + variable)
    for variable in sorted(environ):
        if variable.startswith(ENV_PREFIX) and variable not in ENV_NAMES:
            warnings.append("warning: unknown environment variable %s ignored%s" % (
                variable, _suggest(variable, sorted(ENV_NAMES))))

    explicit = False
    for name, value in given.items():
        option = BY_NAME[name]
        where = (max(option.flags, key=len) if frontend == "cli"
                 else "install_hook(%s=...)" % option.api)
        if option.kind == BOOL:
            value = _check(option, value, where)
        elif option.kind == LIST:
            if not isinstance(value, (str, list)) and hasattr(value, "__iter__"):
                value = list(value)
            value = _check_list(value, where)
            if name in ("include", "exclude"):
                _validate_patterns(name, value, "from " + where)
        else:
            value = _check(option, value, where)
        values[name] = value
        origin[name] = frontend
        explicit = True
    if explicit:
        sources.append(frontend)
    return Settings(values, origin, sources, config_file, warnings)
