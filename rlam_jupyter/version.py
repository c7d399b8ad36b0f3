"""The package version, readable without importing anything else of the package."""

__version__ = "0.2.0"
