"""An in-memory ``Document``: the reference implementation the contract is checked on.

Why in tests: it shows, in a few lines, what GIMP's and Krita's adapters must do,
and lets the job API run end to end (against a real daemon) with no editor.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from portrait_style.plugin.core import (
    BACKGROUND_LAYER,
    GROUP_PREFIX,
    PORTRAIT_LAYER,
    LayerPlan,
    SourceLayer,
)
from portrait_style.plugin.document import LayerInfo
from portrait_style.protocol.messages import Pixels

_ids = itertools.count(1)


@dataclass
class FakeLayer:
    name: str
    pixels: Pixels
    offset: tuple[int, int] = (0, 0)
    mask: Pixels | None = None
    layer_id: str = field(default_factory=lambda: f"layer-{next(_ids)}")
    parent: FakeGroup | None = None


@dataclass
class FakeGroup:
    name: str
    children: list[FakeLayer] = field(default_factory=list)
    record: str | None = None
    layer_id: str = field(default_factory=lambda: f"group-{next(_ids)}")


class FakeDocument:
    """A stack of layers (top first) with groups; counts undo steps per operation."""

    def __init__(self, source: Pixels, offset: tuple[int, int] = (0, 0)) -> None:
        self.source = FakeLayer("photo", source, offset)
        self.stack: list[FakeLayer | FakeGroup] = [self.source]
        self.undo_steps = 0

    def active_layers(self) -> list[LayerInfo]:
        px = self.source.pixels
        return [LayerInfo(ref=self.source, name=self.source.name,
                          bounds=(*self.source.offset, px.width, px.height),
                          layer_id=self.source.layer_id)]

    def read_layer(self, ref: Any) -> SourceLayer:
        return SourceLayer(ref.name, Pixels.from_buffer(bytes(ref.pixels.tobytes()),
                                                        ref.pixels.shape),
                           ref.offset, layer_id=ref.layer_id)

    def add_result_group(self, plan: LayerPlan, above: Any) -> FakeGroup:
        assert plan.record is not None
        group = FakeGroup(plan.group_name, record=plan.record.to_json())
        for planned in plan.layers:
            group.children.append(FakeLayer(planned.name, planned.pixels, plan.offset,
                                            mask=planned.mask, parent=group))
        self.stack.insert(next(i for i, item in enumerate(self.stack) if item is above), group)
        self.undo_steps += 1
        return group

    def result_group_of(self, ref: Any) -> FakeGroup | None:
        if isinstance(ref, FakeLayer):
            ref = ref.parent
        if isinstance(ref, FakeGroup) and ref.name.startswith(GROUP_PREFIX) and ref.record:
            return ref
        return None

    def result_layers(self, group: FakeGroup) -> dict[str, FakeLayer]:
        return {c.name: c for c in group.children if c.name in (PORTRAIT_LAYER, BACKGROUND_LAYER)}

    def read_record(self, group: FakeGroup) -> str | None:
        return group.record

    def read_mask(self, group: FakeGroup) -> Pixels | None:
        portrait = self.result_layers(group).get(PORTRAIT_LAYER)
        return None if portrait is None else portrait.mask

    def write_mask(self, group: FakeGroup, mask: Pixels) -> None:
        self.result_layers(group)[PORTRAIT_LAYER].mask = mask
        self.undo_steps += 1

    def replace_layer(self, group: FakeGroup, name: str, pixels: Pixels, record: str) -> None:
        self.result_layers(group)[name].pixels = pixels
        group.record = record
        self.undo_steps += 1

    def find_layer(self, layer_id: str) -> FakeLayer | FakeGroup | None:
        for item in self.stack:
            if item.layer_id == layer_id:
                return item
            for child in getattr(item, "children", ()):
                if child.layer_id == layer_id:
                    return child
        return None

    def layer_above(self, ref: Any) -> FakeLayer | FakeGroup | None:
        parent = getattr(ref, "parent", None)
        siblings = parent.children if parent is not None else self.stack
        index = next(i for i, item in enumerate(siblings) if item is ref)
        return siblings[index - 1] if index > 0 else None
