"""Command line: ``python -m ctinstrument [OPTIONS] (SCRIPT | -m MODULE) [ARGS]...``.

Everything after the script (or after ``-m MODULE``) belongs to the program, flags included,
exactly as with ``python``.  User mistakes print one line ``ctinstrument: error: ...`` and
exit with status 2; the program's own exit status is passed through unchanged.

``python -m ctinstrument repair DIR`` completes the trace directory of a run that was killed
(see repair.py).  ``repair`` is that command only as the very first argument and only when
no file named ``repair`` exists in the current directory: then it is the script to record,
as ``python repair`` would run it (``python -m ctinstrument -- repair`` always records the
script, ``python -m ctinstrument.repair DIR`` always repairs).
"""

import atexit
import os
import signal
import sys

import click

from . import __version__, disabled
from .errors import UnsupportedPython, UsageError

from .config import BOOL, LIST, OPTIONS

# Options that take a value (the next word is never the script), from the options table.
VALUE_OPTIONS = {flag for option in OPTIONS if option.kind != BOOL for flag in option.flags}
# click tries every word as a long option first and builds a NoSuchOption, with difflib's
# suggestions, before it tries it as a short one: a tenth of a plain start-up per short flag.
LONG_FLAGS = {short: long for option in OPTIONS
              for short, long in zip(option.flags, option.flags[1:])
              if not short.startswith("--") and long.startswith("--")}
LONG_FLAGS["-h"] = "--help"


def split_argv(argv):
    """Split ``argv`` into (ctinstrument options, [script] or [-m, module], program args);
    the options' short flags are given in their long form (LONG_FLAGS)."""
    options = []
    index = 0
    while index < len(argv):
        word = argv[index]
        if word == "--":
            return options, argv[index + 1:index + 2], argv[index + 2:]
        if word == "-m":
            return options, ["-m"] + argv[index + 1:index + 2], argv[index + 2:]
        if word.startswith("-m") and not word.startswith("--"):
            return options, ["-m", word[2:]], argv[index + 1:]
        if word in VALUE_OPTIONS:
            if index + 1 == len(argv):
                return options + [word], [], []  # click reports the missing value
            options += [LONG_FLAGS.get(word, word), argv[index + 1]]
            index += 2
            continue
        if word.startswith("-") and word != "-":
            options.append(LONG_FLAGS.get(word, word))
            index += 1
            continue
        return options, [word], argv[index + 1:]
    return options, [], []


def _table_options(function):
    """Apply a click option for every entry of the options table (config.OPTIONS)."""
    for option in reversed(OPTIONS):
        text = option.help
        if option.kind == LIST:
            text += " Repeatable or comma-separated."
        elif option.kind == BOOL:
            text += " Default: %s." % ("on" if option.default else "off")
        else:
            text += " Default: %s." % option.default
        text += " Env: %s." % ", ".join("$" + env for env in option.env)
        function = click.option(*option.flags, option.name, help=text,
                                multiple=option.kind == LIST, metavar=option.metavar,
                                default=None)(function)
    return function


@click.command(context_settings={"help_option_names": ["-h", "--help"]},
               help="Record a Python program into a CodeTracer trace directory.\n\n"
                    "  python -m ctinstrument [OPTIONS] SCRIPT [ARGS]...\n\n"
                    "  python -m ctinstrument [OPTIONS] -m MODULE [ARGS]...\n\n"
                    "Complete the trace directory of a killed run:\n\n"
                    "  python -m ctinstrument repair DIR\n\n"
                    "Options come from pyproject.toml [tool.ctinstrument] (the nearest one "
                    "above the script, or the working directory with -m), then the "
                    "environment, then this command line; later wins.")
@_table_options
@click.option("-m", "module", metavar="MODULE", help="Run a library module as a script.")
@click.version_option(__version__, prog_name="ctinstrument", message="%(prog)s %(version)s")
@click.argument("script", required=False)
@click.pass_context
def command(context, module, script, **options):
    given = {name: value for name, value in options.items()
             if context.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE}
    return {"module": module, "script": script, "given": given}


def _fail(message, status=2):
    sys.stderr.write("ctinstrument: error: %s\n" % message)
    sys.exit(status)


def parse(argv):
    """Parse ``argv``; returns the options dict and the program's args, or exits (status 2)."""
    options, target, program_args = split_argv(list(argv))
    module = None
    if target[:1] == ["-m"]:
        if len(target) == 2:  # taken here: a "-m" word would cost click what LONG_FLAGS saves
            module, target = target[1], []
        else:
            options = options + target  # "-m" without a module: click reports it
            target = None
    try:
        parsed = command.main(args=options if target is None else options + ["--"] + target,
                              prog_name="python -m ctinstrument", standalone_mode=False)
    except click.exceptions.ClickException as exc:
        _fail(exc.format_message())
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        _fail("aborted")
    if not isinstance(parsed, dict):  # --help / --version already printed
        sys.exit(0)
    if module is not None:
        parsed["module"] = module
    if parsed["module"] and parsed["script"]:
        _fail("give either a script or -m MODULE, not both")
    if not parsed["module"] and not parsed["script"]:
        _fail("no program to record: give a script or -m MODULE (see --help)")
    return parsed, program_args


def main(argv=None, preloaded=frozenset(), launcher_path_removed=False):
    """Entry point of ``python -m ctinstrument``; never returns normally (exits with status).

    ``preloaded``: names in ``sys.modules`` before ctinstrument was imported (the program
    gets its own module wherever its directory shadows one ctinstrument imported);
    ``launcher_path_removed``: whether ``sys.path[0]`` of the launcher (the working
    directory, or the console script's directory) is already gone.
    """
    if not launcher_path_removed:
        del sys.path[0]
    from . import protocol
    from .code_cache import CodeCache
    from .runner import (ExitState, compile_script, forget_shadowed_modules, read_script,
                         run_module, run_script, script_path)
    from .config import resolve
    from .selection import split_patterns
    from .session import Session
    from .writer import prepare_out_dir

    arguments = sys.argv[1:] if argv is None else list(argv)
    if arguments[:1] == ["repair"] and not os.path.isfile("repair"):
        repair_main(arguments[1:])
    parsed, program_args = parse(arguments)
    script = parsed["script"]
    try:
        if disabled.is_disabled():
            disabled.exec_unrecorded([script] if script else ["-m", parsed["module"]],
                                     program_args)
    except UsageError as exc:
        _fail(str(exc))
    try:
        protocol.check_supported()
        if script is not None:
            if os.path.isdir(script):
                raise UsageError("%s is a directory, not a Python script" % script)
            if not os.path.isfile(script):
                raise UsageError("cannot open script %s: no such file" % script)
        start_dir = os.path.dirname(os.path.realpath(script)) if script else os.getcwd()
        settings = resolve(parsed["given"], start_dir, frontend="cli")
        include = split_patterns(settings["include"])
        exclude = split_patterns(settings["exclude"], allow_function=False)
        out_dir = prepare_out_dir(settings["out_dir"])
    except (UsageError, UnsupportedPython) as exc:
        _fail(str(exc))
    for line in settings.warnings:
        sys.stderr.write("ctinstrument: %s\n" % line)
    if settings["debug"]:
        for line in settings.describe():
            sys.stderr.write("ctinstrument: debug: %s\n" % line)

    code = source = cached = None
    cache = CodeCache() if settings["cache"] else None
    if script is not None:
        path = script_path(script)
        try:
            source = read_script(path)
        except OSError as exc:
            _fail("cannot read script %s: %s" % (script, exc.strerror or exc))
        # A cache entry of this very source was compiled and rewritten by a previous run.
        cached = cache.load(path, source) if cache is not None else None
        if cached is None:
            try:
                code = compile_script(source, path)
            except SyntaxError as exc:
                # Reported exactly as Python reports it; nothing was recorded.
                sys.excepthook(type(exc), exc.with_traceback(None), None)
                sys.exit(1)

    project_dir = os.path.dirname(os.path.realpath(script)) if script else os.getcwd()
    program = script_path(script) if script else _module_origin(parsed["module"])
    main_module = parsed["module"]
    if main_module and os.path.basename(program) == "__main__.py":
        main_module += ".__main__"  # a package runs its __main__ submodule
    metadata = settings.as_metadata()
    metadata["out_dir"] = out_dir
    try:
        session = Session(out_dir, program, program_args, include, exclude, project_dir,
                          main_module=main_module, redact=settings["redact"],
                          redact_names=settings["redact_names"],
                          capture_output=settings["capture_output"],
                          paused=settings["paused"], settings=metadata,
                          cache=cache if cache is not None else False,
                          explain="all" if settings["debug"] else settings["explain"])
    except UsageError as exc:
        _fail(str(exc))
    state = ExitState()
    atexit.register(_finish, session, state)
    session.install(finish_at_exit=False)
    forget_shadowed_modules(preloaded, project_dir)
    session.warn_already_imported(copy=True)
    if script is not None:
        accepted, reason = session.selection.accepts_main_script(program)
        session.hook.decisions["__main__"] = (accepted, reason)
        if accepted:
            code = session.hook.main_code(program, source, code, cached)
        elif code is None:
            code = compile_script(source, program)
        run_script(code, script, program_args, state, session.recorder)
    else:
        run_module(parsed["module"], program_args, state, session.recorder)
    sys.exit(state.exit_code)


def _module_origin(name):
    """The source path of module ``name`` found without importing anything, else ``name``."""
    import importlib.machinery
    parts = name.split(".")
    search = [os.getcwd()] + sys.path  # python -m looks in the working directory first
    spec = None
    for index in range(len(parts)):
        spec = importlib.machinery.PathFinder.find_spec(".".join(parts[:index + 1]), search)
        if spec is None:
            return name
        search = spec.submodule_search_locations
    if spec.submodule_search_locations:
        spec = importlib.machinery.PathFinder.find_spec(name + ".__main__",
                                                        spec.submodule_search_locations)
    return spec.origin if spec is not None and spec.origin else name


def _finish(session, state):
    session.finish(state.exit_code)
    if state.interrupted:
        # Die of SIGINT as Python does after an uncaught KeyboardInterrupt.
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)


@click.command(context_settings={"help_option_names": ["-h", "--help"]},
               help="Complete the trace directory DIR of a recording that was killed "
                    "(SIGKILL, os._exit, a crash): keep every complete event, close the "
                    "calls left open, write trace_paths.json and trace_metadata.json.\n\n"
                    "'repair' is this command only as the first argument and when no file "
                    "named 'repair' is in the current directory (else that script is "
                    "recorded); 'python -m ctinstrument.repair DIR' always repairs.")
@click.argument("trace_dir", metavar="DIR")
def repair_command(trace_dir):
    return trace_dir


def repair_main(argv):
    """``python -m ctinstrument repair DIR``; exits 0 once DIR is a complete trace, else 2
    with a one-line error."""
    from .repair import repair
    try:
        trace_dir = repair_command.main(args=list(argv), prog_name="python -m ctinstrument repair",
                                        standalone_mode=False)
    except click.exceptions.ClickException as exc:
        _fail(exc.format_message())
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    if not isinstance(trace_dir, str):  # --help already printed
        sys.exit(0)
    try:
        summary = repair(trace_dir)
    except UsageError as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail("cannot repair %s: %s" % (trace_dir, exc.strerror or exc))
    print("ctinstrument: %s" % summary)
    sys.exit(0)
