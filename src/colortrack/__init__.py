"""colortrack: self-supervised tracking by colorization, and reference-based video colorization."""

__version__ = "0.1.0"
