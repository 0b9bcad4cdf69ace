"""The errors every layer raises: a config or a dataset that cannot give correct results.
The message names the key, file or class at fault; the workflow prints it and stops."""


class ConfigError(ValueError):
    """A configuration that cannot produce correct results; the message names the key."""


class DataError(ValueError):
    """Input data that cannot give correct results; the message names the file or class."""


class EstimatorError(ValueError):
    """Features or labels a transferability estimator cannot score; the message says which
    and why."""
