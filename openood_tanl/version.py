"""The package version (read by setup.cfg and recorded in every run record)."""
__version__ = "0.2.0"
