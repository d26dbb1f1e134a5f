"""Domain errors of the scoring layer; each names the value it refuses."""

from __future__ import annotations


class ScoringError(Exception):
    """Base of every scoring error; the HTTP layer maps subclasses to status codes."""

    #: What kind of thing was refused ("benchmark", "task", ...), for problem documents.
    kind = "value"

    def __init__(self, value: object, message: str | None = None) -> None:
        self.value = value
        self.message = message or f"unknown {self.kind} {value!r}"
        super().__init__(self.message)


class UnknownBenchmark(ScoringError, LookupError):
    """No benchmark of that name in the snapshot."""

    kind = "benchmark"


class UnknownTask(ScoringError, LookupError):
    """No task of that name in the snapshot."""

    kind = "task"


class UnknownModel(ScoringError, LookupError):
    """No model of that name in the snapshot."""

    kind = "model"


class NoStatistics(ScoringError, LookupError):
    """The task has no descriptive statistics in this dataset."""

    kind = "descriptive statistics"

    def __init__(self, value: object, message: str | None = None) -> None:
        super().__init__(value, message or f"task {value!r} has no descriptive statistics")


class BadParameter(ScoringError, ValueError):
    """A parameter value that scoring cannot use (names the parameter and the value)."""

    kind = "parameter"

    def __init__(self, name: str, value: object, reason: str) -> None:
        self.name = name
        super().__init__(value, f"bad value {value!r} for {name}: {reason}")


class UnknownLanguage(BadParameter):
    """A language filter value that is neither a known code nor a known language name."""

    kind = "language"

    def __init__(self, value: object, reason: str = "not a known language code or name") -> None:
        super().__init__("language", value, reason)
