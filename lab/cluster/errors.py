"""The one exception type of the lab tooling: a message for humans, naming what failed."""


class LabError(Exception):
    """A lab operation failed; ``str()`` is the message to show, ``component`` what failed."""

    def __init__(self, message: str, component: str | None = None, log_tail: str | None = None):
        self.component = component
        self.log_tail = log_tail
        text = f"{component}: {message}" if component else message
        if log_tail:
            text += "\n--- last lines of its log ---\n" + log_tail.rstrip()
        super().__init__(text)
