"""Hongyan (鸿雁): an enterprise SMS platform."""
__version__ = "0.1.0"
