"""sceneseg: semantic segmentation of driving scenes."""

__version__ = "0.1.0"
