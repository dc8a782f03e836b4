"""Names and numbers both sides of the wire agree on.

Kept free of torch and of the daemon so the plug-in side (inside GIMP or Krita)
can import it with only pyzmq and msgpack installed.
"""

PROTOCOL_VERSION = 1

#: loopback only by default: remote use must be asked for explicitly
DEFAULT_ENDPOINT = "tcp://127.0.0.1:5571"

#: every layer a job can return; a request names the subset it wants
LAYER_NAMES: tuple[str, ...] = ("background", "portrait", "mask", "composite")

#: the two region passes, each with its own knobs
REGION_NAMES: tuple[str, ...] = ("background", "portrait")

#: the region knobs themselves (names, types, ranges, defaults, labels) are one
#: table: protocol/knobs.py

#: environment variable holding the shared token (daemon and clients)
TOKEN_ENV = "PORTRAIT_STYLE_TOKEN"

#: smallest ``max_working_pixels`` a request may ask for (256²)
MIN_WORKING_PIXELS = 65_536

#: largest ``mask_feather`` (Gaussian sigma in layer pixels) a request may ask for
MAX_MASK_FEATHER = 256.0
