"""The one error root and its specific subclasses.

Every message names the bad value and what was expected.
"""


class PerfmeshError(Exception):
    """Root of every error perfmesh raises on purpose."""


class ConfigError(PerfmeshError, ValueError):
    """A configuration value (budget config, CLI flag, TOML key) is invalid."""


class UnknownMetricError(PerfmeshError, LookupError):
    """A metric or budget name that is not known."""


class UnknownStrategyError(PerfmeshError, LookupError):
    """An optimization strategy name that is not registered."""


class InvalidParameterError(PerfmeshError, ValueError):
    """A strategy parameter that does not match the strategy's schema."""


class WireError(PerfmeshError, ValueError):
    """A frame that cannot be decoded or does not match the wire schema.

    ``reason`` is a short machine-readable code counted per peer.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
