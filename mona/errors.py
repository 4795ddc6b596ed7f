"""Error types: every problem a user can fix is a :class:`MonaError` with a one-line message."""


class MonaError(ValueError):
    """Bad input or mismatched artifacts; the message alone tells the user what to fix."""


class DataError(MonaError):
    """An input file or record is malformed; the message names file:line and what was expected."""


class ModelError(MonaError):
    """A model could not be found or loaded, or a hook does not exist in it."""


class ArtifactMismatch(MonaError):
    """An artifact (store, SAE, selection) was made with a different model, SAE, hook or input."""
