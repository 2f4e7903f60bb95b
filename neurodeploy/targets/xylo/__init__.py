"""SynSense Xylo™Audio 3 through Rockpool and its bit-precise simulator xylosim (target ``xylo``).

Light: importing this package imports neither rockpool nor xylosim (see :mod:`.backend`)."""
from .options import XyloOptions
from .target import XyloTarget

__all__ = ["XyloOptions", "XyloTarget"]
