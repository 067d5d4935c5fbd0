"""skinapp: a clinic workstation app for skin-image analysis."""

__version__ = "0.1.0"
