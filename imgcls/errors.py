"""Errors that end a run with one clear message instead of a traceback."""


class ImgclsError(Exception):
    """A problem with the user's input: the message names the cause and the fix.

    The CLI prints it as one line and exits with status 2; nothing already written is touched.
    The constructor takes one message so that DataLoader workers can re-raise it in the main process.
    """


class DataError(ImgclsError):
    """A dataset folder, file or split that cannot be used as configured."""


class ConfigError(ImgclsError):
    """A configuration value that cannot work: an unknown name, a mismatch between parts."""
