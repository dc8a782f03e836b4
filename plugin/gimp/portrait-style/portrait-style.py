#!/usr/bin/env python3
"""GIMP 3 entry point of portrait-style: Filters ▸ Artistic ▸ Portrait Style….

GIMP runs this file as its own process (once to query the procedures, then
once per call). It only puts its own folder on ``sys.path`` and hands over to
the ``portrait_style_gimp`` package, which carries the rest.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gi  # noqa: E402

gi.require_version("Gimp", "3.0")
from gi.repository import Gimp  # noqa: E402
from portrait_style_gimp.plugin import PortraitStyle  # noqa: E402

Gimp.main(PortraitStyle.__gtype__, sys.argv)
