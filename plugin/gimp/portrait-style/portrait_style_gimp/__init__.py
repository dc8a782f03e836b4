"""The portrait-style plug-in for GIMP 3 (Filters ▸ Artistic ▸ Portrait Style…).

Modules: ``plugin`` (the ``Gimp.PlugIn`` and its PDB procedures), ``runner``
(jobs on a worker thread, progress in GIMP), ``document`` (the core's
``Document`` over GIMP's layers), ``dialog`` (the GimpUi dialog), ``recent``
(recent style paintings). The installer adds ``_core`` (the product's
editor-safe core and protocol) and, when GIMP's Python lacks them, ``_wire``
(pyzmq and msgpack).
"""
