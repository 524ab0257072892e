"""Domain exceptions of the iptables engine. Modules turn them into fail_json."""

from ansible_collections.meshops.istio.plugins.module_utils.errors import MeshopsError


class IptablesError(MeshopsError):
    """Base class of every error the engine raises."""


class ParseError(IptablesError):
    """A dump that is malformed, truncated or names something unknown.

    ``source`` names the input (a file, a namespace, a command) and ``line`` the 1-based line.
    """

    def __init__(self, message, source="<input>", line=None, text=None):
        self.source = source
        self.line = line
        self.text = text
        where = source if line is None else f"{source} line {line}"
        full = f"{where}: {message}"
        if text is not None:
            full += f" (line text: {text.strip()[:200]!r})"
        super().__init__(full)
        self.reason = message


class SourceError(IptablesError):
    """The rules could not be read: no such namespace, pid or file, or the dump command failed."""


class PacketSpecError(IptablesError):
    """A packet description given to the tracer is invalid (address, port, hook ...)."""
