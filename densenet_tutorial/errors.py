"""The one kind of error a learner can fix: a missing folder, a bad setting, no network.

Every message says what to do. ``python -m densenet_tutorial`` prints such an error as one
line and exits with status 2; any other exception is a bug (ours, or a library's) and keeps
its traceback. The subclasses also derive from the matching built-in exception, so
``except ValueError`` keeps working where a caller expects one.
"""


class ProjectError(Exception):
    """A problem the user can fix; the message says how."""


class SettingError(ProjectError, ValueError):
    """A parameter outside its allowed range (a growth rate of 0, an unknown precision)."""


class MissingInputError(ProjectError, FileNotFoundError):
    """Something the step needs is not there yet (a split, a trained model, a folder)."""


class RunError(ProjectError, RuntimeError):
    """The step could not run as asked (no network, out of memory, a refused run folder)."""
