"""ampnet: neural amp and pedal captures that players can use."""

__version__ = "0.1.0"
