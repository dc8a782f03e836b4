"""The contract every ``Document`` implementation must pass, as plain Python checks.

Why plain Python (not pytest): the same checks run against the fake document
in the test suite and *inside* GIMP and Krita, whose interpreters have no
pytest. They need no daemon: the plan is made from the source layer's own
pixels, so every expected value is known exactly.

``run_contract(document, source_ref)`` returns the list of broken rules (empty:
the implementation keeps the contract of DESIGN.md §3 and plugin/document.py).
It adds one result group above the source and edits only that group.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ..protocol.messages import Pixels
from .core import BACKGROUND_LAYER, PORTRAIT_LAYER, LayerPlan, PlannedLayer, SourceLayer
from .document import Document
from .job import result_anchor
from .pixels import packed, with_alpha
from .record import JobRecord

__all__ = ["contract_plan", "run_contract"]


def _bytes(image: Pixels | None) -> bytes:
    return b"" if image is None else bytes(packed(image).data)


def _mapped(image: Pixels, fn: Callable[[int], int]) -> Pixels:
    table = bytes(fn(v) & 0xFF for v in range(256))
    return Pixels.from_buffer(_bytes(image).translate(table), image.shape)


def _half_mask(width: int, height: int, left: bool) -> Pixels:
    half = width // 2
    row = (b"\xff" * half + b"\x00" * (width - half)) if left else (
        b"\x00" * half + b"\xff" * (width - half))
    return Pixels.from_buffer(row * height, (height, width, 1))


def contract_plan(source: SourceLayer) -> LayerPlan:
    """A plan like a daemon's reply, derived from the source's own pixels."""
    width, height = source.size
    alpha = source.alpha
    portrait = with_alpha(_mapped(source.pixels, lambda v: 255 - v), alpha)
    background = with_alpha(_mapped(source.pixels, lambda v: v // 2 + 40), alpha)
    mask = _half_mask(width, height, left=True)
    record = JobRecord(style_path="/styles/contract_style.png", style_sha256="0" * 64,
                       style_name="Contract Style", params={"outputs": ["portrait"]},
                       source_id=source.layer_id, source_name=source.name, engine="contract")
    return LayerPlan(group_name="Portrait style — Contract Style", source_name=source.name,
                     offset=source.offset, size=source.size,
                     layers=[PlannedLayer(PORTRAIT_LAYER, portrait, mask=mask),
                             PlannedLayer(BACKGROUND_LAYER, background)],
                     mask=mask, composite=None, record=record)


def run_contract(document: Document, source_ref: Any) -> list[str]:
    """Check every rule on ``document``, using the layer ``source_ref``; the failures."""
    failures: list[str] = []

    def expect(condition: bool, rule: str) -> None:
        if not condition:
            failures.append(rule)

    source = document.read_layer(source_ref)
    before = _bytes(source.pixels)
    infos = document.active_layers()
    expect(bool(infos), "active_layers() lists at least the active layer")
    plan = contract_plan(source)
    group = document.add_result_group(plan, source_ref)
    expect(document.result_group_of(group) is not None, "result_group_of(group) finds it")
    expect(document.result_group_of(source_ref) is None, "the source is not a result group")
    above = document.layer_above(source_ref)
    above_group = document.result_group_of(above) if above is not None else None
    expect(above_group is not None and document.read_record(above_group) is not None
           and json.loads(document.read_record(above_group) or "{}")
           == json.loads(plan.record.to_json() if plan.record else "{}"),
           "layer_above(source) is the new group: it lands directly above its source")
    anchor = document.result_group_of(result_anchor(document, source_ref, source.layer_id))
    expect(source.layer_id == "" or (anchor is not None and
                                     document.read_record(anchor) == document.read_record(group)),
           "result_anchor(source) is the group just added (a later result goes above it)")
    layers = document.result_layers(group)
    expect(set(layers) >= {PORTRAIT_LAYER, BACKGROUND_LAYER},
           f"result_layers() holds Portrait and Background (got {sorted(layers)})")
    if failures:
        return failures
    expect(document.result_group_of(layers[PORTRAIT_LAYER]) is not None,
           "result_group_of(a layer inside the group) finds the group")
    portrait = document.read_layer(layers[PORTRAIT_LAYER])
    background = document.read_layer(layers[BACKGROUND_LAYER])
    expect(_bytes(portrait.pixels) == _bytes(plan.layer(PORTRAIT_LAYER).pixels),
           "Portrait holds the whole frame exactly, not cut by the mask")
    expect(_bytes(background.pixels) == _bytes(plan.layer(BACKGROUND_LAYER).pixels),
           "Background holds the plan's pixels exactly")
    expect(portrait.offset == source.offset and background.offset == source.offset,
           f"results sit at the source's offset {source.offset} (got {portrait.offset}, "
           f"{background.offset})")
    expect(portrait.size == source.size, "results have the source's size")
    expect(_bytes(document.read_mask(group)) == _bytes(plan.mask),
           "read_mask() returns the person mask given as the Portrait layer's mask")
    stored = document.read_record(group)
    assert plan.record is not None
    expect(stored is not None and json.loads(stored) == json.loads(plan.record.to_json()),
           "the job record is stored with the group, unchanged")
    expect(_bytes(document.read_layer(source_ref).pixels) == before,
           "the source layer is untouched")
    edited = _half_mask(source.size[0], source.size[1], left=False)
    document.write_mask(group, edited)
    expect(_bytes(document.read_mask(group)) == _bytes(edited), "write_mask() replaces the mask")
    new_portrait = with_alpha(_mapped(source.pixels, lambda v: v // 3), source.alpha)
    document.replace_layer(group, PORTRAIT_LAYER, new_portrait, plan.record.to_json())
    layers = document.result_layers(group)
    expect(_bytes(document.read_layer(layers[PORTRAIT_LAYER]).pixels) == _bytes(new_portrait),
           "replace_layer() replaces the Portrait pixels")
    expect(_bytes(document.read_mask(group)) == _bytes(edited),
           "replace_layer() keeps the artist's mask")
    expect(_bytes(document.read_layer(layers[BACKGROUND_LAYER]).pixels)
           == _bytes(plan.layer(BACKGROUND_LAYER).pixels),
           "replace_layer(Portrait) leaves Background alone")
    found = document.find_layer(source.layer_id) if source.layer_id else None
    expect(found is not None and _bytes(document.read_layer(found).pixels) == before,
           "find_layer(source id) finds the source layer")
    return failures
