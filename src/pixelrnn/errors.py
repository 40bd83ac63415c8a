"""Errors a user can cause.

Anything raised as :class:`PixelRNNError` is a problem with the user's input (a missing data set, a bad flag, a
corrupt file, a checkpoint of another model). The command line prints its message as one line and exits non-zero,
without a traceback; library callers can catch it like any other exception.
"""


class PixelRNNError(Exception):
    """A problem with the user's input; the message says what is wrong and how to fix it."""


class DataError(PixelRNNError):
    """A data set is missing, corrupt or of the wrong shape."""


class CheckpointError(PixelRNNError):
    """A checkpoint is missing, corrupt, or belongs to another model."""


class ConfigError(PixelRNNError):
    """An unknown model, preset, option or an invalid value."""
