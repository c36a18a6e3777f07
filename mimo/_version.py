"""The version, in one place (read by setuptools and by every page or file that is stamped with it)."""
__version__ = "0.2.0"
