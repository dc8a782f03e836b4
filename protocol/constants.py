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

#: numeric region knobs and their inclusive ranges (SPEC.md §5, "Region knobs");
#: hosts build their sliders from this, the daemon validates against it
REGION_FLOAT_KNOBS: dict[str, tuple[float, float]] = {
    "strength": (0.0, 1.0),
    "w_low": (0.0, 2.0),
    "w_high": (0.0, 2.0),
    "structure": (0.0, 1.0),
    "likeness": (0.0, 1.0),
    "stroke_size": (0.25, 4.0),
}

#: on/off region knobs
REGION_BOOL_KNOBS: tuple[str, ...] = ("preserve_color",)

#: environment variable holding the shared token (daemon and clients)
TOKEN_ENV = "PORTRAIT_STYLE_TOKEN"

#: smallest ``max_working_pixels`` a request may ask for (256²)
MIN_WORKING_PIXELS = 65_536

#: largest ``mask_feather`` (Gaussian sigma in layer pixels) a request may ask for
MAX_MASK_FEATHER = 256.0
