"""The label convention every part of sceneseg shares: datasets, losses, metrics and pictures.

A module of its own, importing nothing, so that metrics and the data package can both use it
without one loading the other.
"""

# Label value of pixels that carry no class (unlabelled, void, padding): losses skip them and
# metrics do not count them. 255 fits the uint8 label maps and is what CamVid's tools use.
IGNORE_INDEX = 255
