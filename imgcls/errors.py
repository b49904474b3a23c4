"""Errors that end a run with one clear message instead of a traceback."""


class ImgclsError(Exception):
    """A problem with the user's input: the message names the cause and the fix.

    The CLI prints it as one line and exits with status ``exit_code`` (2); nothing already written is
    touched. The constructor takes one message so that DataLoader workers can re-raise it in the main process.
    """

    exit_code = 2


class DataError(ImgclsError):
    """A dataset folder, file or split that cannot be used as configured."""


class ConfigError(ImgclsError):
    """A configuration value that cannot work: an unknown name, a mismatch between parts."""


class DiskFullError(ImgclsError):
    """A file could not be written for lack of space (or a file-size limit): exit status 3."""

    exit_code = 3


class OutOfMemoryError(ImgclsError):
    """The run needed more memory than the machine (or its limit) gives: exit status 4."""

    exit_code = 4
