"""The package's error base: any FgDepthError is a user-facing message (file, key or value named), shown by
the CLI and the ROS node without a traceback."""


class FgDepthError(Exception):
    """Base of the errors fg-depth raises for bad input, configuration or environment."""
