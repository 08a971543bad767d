"""Assembling instrumented code with the compiler's constant and name tables.

``bytecode`` numbers constants and names in the order the instructions first use them.
Programs and tools index these tables directly (a test takes a comprehension's code object
from ``co_consts[1]``, ``inspect`` and ``dis`` walk them), so ``assemble`` hands the assembler
the original ``co_consts`` (nested code objects replaced by their instrumented versions) and
``co_names`` before any instruction: they keep their indexes, and what the probes add (site
and function ids, the probe names) comes after them.

The seeding uses the assembler ``bytecode.Bytecode.to_code`` uses internally
(``_ConvertBytecodeToConcrete``: its ``add_const``, and ``add_name`` or, in older releases
such as 0.17, ``add(names, name)``); with a ``bytecode`` that has no such assembler the code is
assembled by ``to_code``, in first-use order.
"""

from bytecode import ControlFlowGraph
from bytecode import concrete as _concrete

_Assembler = getattr(_concrete, "_ConvertBytecodeToConcrete", None)
SEEDABLE = hasattr(_Assembler, "add_const") and (hasattr(_Assembler, "add_name")
                                                 or hasattr(_Assembler, "add"))


def assemble(bc, code, children):
    """The code object of ``bc`` (a ``bytecode.Bytecode``, the rewritten ``code``), with
    ``code.co_consts`` and ``code.co_names`` at their original indexes.

    ``children`` maps ``id()`` of each code object in ``code.co_consts`` to the code object
    that replaces it.  Raises what ``Bytecode.to_code`` raises for bytecode it cannot
    assemble.
    """
    if not SEEDABLE:
        return bc.to_code()
    # What Bytecode.to_code does: stack depths (and 3.11+ exception table depths) first.
    cfg = ControlFlowGraph.from_bytecode(bc)
    stacksize = cfg.compute_stacksize(check_pre_and_post=True,
                                      compute_exception_stack_depths=True)
    assembler = _Assembler(cfg.to_bytecode())
    for const in code.co_consts:
        assembler.add_const(children.get(id(const), const))
    add_name = getattr(assembler, "add_name", None)
    for name in code.co_names:
        if add_name is None:
            assembler.add(assembler.names, name)
        else:
            add_name(name)
    concrete = assembler.to_concrete_bytecode(compute_exception_stack_depths=False)
    return concrete.to_code(stacksize=stacksize, compute_exception_stack_depths=False)
