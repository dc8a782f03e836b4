"""portrait-style: portrait-aware arbitrary style transfer for image editors.

The product namespace. The top-level folders of the repository (``protocol/``,
``daemon/``, ``plugin/``, ``weights/``, ``installer/``) are installed as
subpackages of this one, so a host application only ever sees ``portrait_style``.
"""

__version__ = "0.1.0"
