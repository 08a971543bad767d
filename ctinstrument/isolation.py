"""A private copy of the builtins for ctinstrument's own modules.

Programs delete, replace or clear builtins (``del builtins.len``, patched ``print``,
sandboxes).  Modules that run while the program runs bind ``__builtins__`` to this copy,
taken when ctinstrument is imported, so functions defined in them keep working whatever the
program does to ``builtins`` (functions capture ``__builtins__`` when they are created).
"""

import builtins

PRIVATE_BUILTINS = dict(builtins.__dict__)
