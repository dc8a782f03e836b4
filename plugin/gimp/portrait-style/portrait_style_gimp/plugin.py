"""The GIMP 3 plug-in: three PDB procedures and their thin run functions.

Why thin: everything a job means (options → request, reply → layer plan, the
record, the artist's sentences for errors) lives in the shared core; the run
functions only turn GIMP's arguments into the core's options, pump the job's
progress into GIMP's progress bar, and hand GIMP's return values back.

Nothing here imports pyzmq or msgpack at module level: GIMP queries every
plug-in at start-up, and a failing import then would mean the plug-in never
registers. The wire libraries (and the core, which needs them) are imported
inside ``run``, from the plug-in's own ``_wire`` folder when GIMP's Python
lacks them.
"""

from __future__ import annotations

from typing import Any

import gi

gi.require_version("Gimp", "3.0")
from gi.repository import Gimp, GLib, GObject  # noqa: E402

__all__ = ["PortraitStyle", "STYLIZE", "RERUN_PORTRAIT", "RERUN_BACKGROUND", "LAYERS_SUFFIX"]

STYLIZE = "plug-in-portrait-style"
RERUN_PORTRAIT = "plug-in-portrait-style-rerun-portrait"
RERUN_BACKGROUND = "plug-in-portrait-style-rerun-background"
MENU = "<Image>/Filters/Artistic"
#: the Layers dock's context menu, where a re-run of a selected group is at hand
LAYERS_MENU = "<Layers>/Portrait Style"
#: the re-runs' twins for the Layers dock (GIMP puts only image procedures there)
LAYERS_SUFFIX = "-from-layers"
_RW = GObject.ParamFlags.READWRITE


def _fail(procedure: Any, message: str,
          status: Gimp.PDBStatusType = Gimp.PDBStatusType.EXECUTION_ERROR) -> Any:
    """Return values GIMP shows as an error message (interactive) or hands to the caller."""
    error = GLib.Error.new_literal(Gimp.PlugIn.error_quark(), message, 0)
    return procedure.new_return_values(status, error)


def _success(procedure: Any) -> Any:
    return procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, GLib.Error())


def _add_endpoint_argument(procedure: Any) -> None:
    procedure.add_string_argument(
        "endpoint", "Daemon _endpoint",
        "ZeroMQ endpoint of the portrait-style daemon (e.g. tcp://127.0.0.1:5571); "
        "empty: the one in portrait-style's config file, started on demand", "", _RW)


def _run_stylize(procedure: Any, run_mode: Gimp.RunMode, image: Any, drawables: list[Any],
                 config: Any, _data: Any) -> Any:
    if run_mode == Gimp.RunMode.INTERACTIVE:
        from . import dialog

        if not dialog.ask(procedure, config, image, drawables):
            return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, GLib.Error())
    try:
        from .runner import stylize
    except ImportError as exc:  # the wire libraries: say what to do, in GIMP's message box
        return _fail(procedure, str(exc))
    message = stylize(image, drawables, config)
    return _fail(procedure, message) if message else _success(procedure)


def _do_rerun(procedure: Any, image: Any, drawables: list[Any], config: Any,
              region: str) -> Any:
    if image is None:
        return _fail(procedure, "Open the image with the result group first.",
                     Gimp.PDBStatusType.CALLING_ERROR)
    try:
        from .runner import rerun
    except ImportError as exc:
        return _fail(procedure, str(exc))
    message = rerun(image, drawables or list(image.get_selected_layers()), config, region)
    return _fail(procedure, message) if message else _success(procedure)


def _rerun(region: str) -> Any:
    """The Filters-menu re-run: (run-mode, display, image, drawables) in ``config``."""
    def run(procedure: Any, config: Any, _data: Any) -> Any:
        drawables = list(config.get_core_object_array("drawables") or [])
        return _do_rerun(procedure, config.get_property("image"), drawables, config, region)

    return run


def _rerun_from_layers(region: str) -> Any:
    """The Layers-dock twin: an image procedure, as GIMP requires there."""
    def run(procedure: Any, _run_mode: Gimp.RunMode, image: Any, drawables: list[Any],
            config: Any, _data: Any) -> Any:
        return _do_rerun(procedure, image, list(drawables), config, region)

    return run


class PortraitStyle(Gimp.PlugIn):
    """Registers Filters ▸ Artistic ▸ Portrait Style… and the re-run procedures."""

    def do_set_i18n(self, _name: str) -> bool:
        return False  # no translations yet; GIMP then uses the strings as they are

    def do_query_procedures(self) -> list[str]:
        return [STYLIZE, RERUN_PORTRAIT, RERUN_BACKGROUND,
                RERUN_PORTRAIT + LAYERS_SUFFIX, RERUN_BACKGROUND + LAYERS_SUFFIX]

    def do_create_procedure(self, name: str) -> Any:
        if name == STYLIZE:
            return self._stylize_procedure(name)
        region = "portrait" if name.startswith(RERUN_PORTRAIT) else "background"
        return self._rerun_procedure(name, region, name.endswith(LAYERS_SUFFIX))

    def _common(self, procedure: Any) -> None:
        # "*": greyscale images are served in grey, indexed ones get a clear refusal
        # instead of a greyed-out menu
        procedure.set_image_types("*")
        procedure.set_sensitivity_mask(Gimp.ProcedureSensitivityMask.DRAWABLE
                                       | Gimp.ProcedureSensitivityMask.DRAWABLES)
        procedure.set_attribution("portrait-style", "portrait-style contributors", "2026")

    def _stylize_procedure(self, name: str) -> Any:
        procedure = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN,
                                            _run_stylize, None)
        self._common(procedure)
        procedure.set_menu_label("Portrait _Style…")
        procedure.add_menu_path(MENU)
        procedure.set_documentation(
            "Restyle a photo after a painting, portrait-aware",
            "Sends each selected layer and a style painting to the portrait-style daemon and "
            "adds, above the layer, a group 'Portrait style — <style>' holding a Background "
            "layer (the whole frame restyled) and a Portrait layer (the person, restyled more "
            "gently) whose layer mask is the person mask. Edit the mask and use the re-run "
            "procedures to recompute one layer while keeping the edit. The source layer is "
            "never changed; everything is one undo step.", name)
        procedure.add_file_argument("style", "St_yle painting",
                                    "The painting whose style is applied (any image GIMP opens)",
                                    Gimp.FileChooserAction.OPEN, True, None, _RW)
        from . import knob_args  # the knob table: one argument per control, its range

        knob_args.declare(procedure, knob_args.table(), _RW)
        _add_endpoint_argument(procedure)
        return procedure

    def _rerun_procedure(self, name: str, region: str, from_layers: bool) -> Any:
        """Filters ▸ Artistic: a plain procedure whose second argument is the display.

        GIMP's Filters ▸ Re-Show Last / Repeat Last remember a procedure run from a
        menu only when its second argument is an image. A re-run remembered there
        would come back instead of the Portrait Style dialog; so this re-run takes
        (run-mode, display, image, drawables), which the image window fills in.
        The Layers dock only lists image procedures: its twin (``from_layers``) is one,
        and GIMP's rule applies to it.
        """
        if from_layers:
            procedure = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN,
                                                _rerun_from_layers(region), None)
        else:
            procedure = Gimp.Procedure.new(self, name, Gimp.PDBProcType.PLUGIN,
                                           _rerun(region), None)
            procedure.add_enum_argument("run-mode", "Run mode", "The run mode", Gimp.RunMode,
                                        Gimp.RunMode.NONINTERACTIVE, _RW)
            procedure.add_display_argument("display", "Display",
                                           "The image window (may be none)", True, _RW)
            procedure.add_image_argument("image", "Image", "The image", True, _RW)
            procedure.add_core_object_array_argument(
                "drawables", "Drawables", "The selected result group (or a layer in it)",
                Gimp.Drawable.__gtype__, _RW)
        self._common(procedure)
        title = region.capitalize()
        procedure.set_menu_label(f"Portrait Style: Re-run _{title}")
        procedure.add_menu_path(LAYERS_MENU if from_layers else MENU)
        procedure.set_documentation(
            f"Recompute the {title} layer of a Portrait Style result group",
            f"Takes a result group (or a layer in it), and recomputes its {title} layer with "
            "the group's stored style and settings, using the Portrait layer's current mask "
            "as the person mask, so an edited mask is kept. One undo step.", name)
        _add_endpoint_argument(procedure)
        return procedure
