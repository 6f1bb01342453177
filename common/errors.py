"""Errors the engine raises for bad input; the CLI prints them as one sentence and exits non-zero."""


class EngineError(Exception):
    """A problem with the caller's input (data, arguments, artifact) rather than a bug."""


class DataError(EngineError):
    """The data file cannot be used: missing, empty, wrong columns, unknown labels."""


class ArtifactError(EngineError):
    """A prompt artifact cannot be loaded or does not fit the base model."""
