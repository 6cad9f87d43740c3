"""gate: a policy-as-code admission gate for Python and conda packages."""

__version__ = "0.1.0"
