"""rapidresponse: the first hours after a minor at risk of exploitation goes missing."""

__version__ = "0.1.0"
