"""Where a new result goes and what it is made from, and how progress reads.

The rule for a layer inside a result group (it stands for the group's source)
and the placement of a new group (directly above its source, above earlier
results of the same source) live in the core, so GIMP and Krita — whose own
tests check the same in the real editors — cannot drift apart.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from fake_document import FakeDocument, FakeGroup, FakeLayer

from portrait_style.plugin.contract import contract_plan
from portrait_style.plugin.core import PORTRAIT_LAYER, OptionError
from portrait_style.plugin.job import (
    Job,
    JobState,
    apply,
    result_anchor,
    stylize_source,
)
from portrait_style.plugin.stages import describe, stage_words
from portrait_style.protocol.messages import Pixels
from portrait_style.protocol.request import JobParams


def _document() -> FakeDocument:
    rng = np.random.default_rng(1)
    return FakeDocument(Pixels.from_array(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)))


def _add_result(doc: FakeDocument, above: object) -> FakeGroup:
    plan = contract_plan(doc.read_layer(doc.source))
    return doc.add_result_group(plan, above)


def _done_job(doc: FakeDocument, layer: object) -> Job:
    source = doc.read_layer(layer)
    plan = contract_plan(source)
    assert plan.record is not None
    return Job(source=source, style=source.pixels, params=JobParams(), record=plan.record,
               group=layer, state=JobState.DONE, plan=plan)


def test_a_plain_layer_is_its_own_source() -> None:
    doc = _document()
    assert stylize_source(doc, doc.source) is doc.source


def test_a_layer_inside_a_result_group_stands_for_the_groups_source() -> None:
    doc = _document()
    group = _add_result(doc, doc.source)
    portrait = doc.result_layers(group)[PORTRAIT_LAYER]
    assert stylize_source(doc, portrait) is doc.source
    assert stylize_source(doc, group) is doc.source


def test_a_result_whose_source_is_gone_is_refused_in_words() -> None:
    doc = _document()
    group = _add_result(doc, doc.source)
    doc.stack.remove(doc.source)
    with pytest.raises(OptionError, match=r"photo layer it was made from \('photo'\) is gone"):
        stylize_source(doc, doc.result_layers(group)[PORTRAIT_LAYER])


def test_a_new_result_lands_directly_above_its_source() -> None:
    doc = _document()
    apply(doc, _done_job(doc, doc.source))
    assert isinstance(doc.stack[0], FakeGroup) and doc.stack[1] is doc.source


def test_a_new_result_goes_above_earlier_results_of_the_same_source() -> None:
    """Inserted right on the source it would sit under the old group, hidden."""
    doc = _document()
    first = _add_result(doc, doc.source)
    second = apply(doc, _done_job(doc, doc.source))
    assert doc.stack.index(second) < doc.stack.index(first) < doc.stack.index(doc.source)
    assert result_anchor(doc, doc.source, doc.source.layer_id) is second


def test_other_layers_above_stop_the_climb() -> None:
    """A layer the artist put above the old result is not climbed over."""
    doc = _document()
    first = _add_result(doc, doc.source)
    doc.stack.insert(0, FakeLayer("sketch", doc.source.pixels))
    assert result_anchor(doc, doc.source, doc.source.layer_id) is first


def test_results_of_another_photo_are_not_climbed_over() -> None:
    doc = _document()
    other = FakeLayer("other photo", doc.source.pixels)
    doc.stack.append(other)
    plan = contract_plan(doc.read_layer(other))
    doc.add_result_group(plan, doc.source)  # made from `other`, sitting on `photo`
    assert result_anchor(doc, doc.source, doc.source.layer_id) is doc.source


@pytest.mark.parametrize("state, stage, fraction, position, expected", [
    ("running", "transform", 0.4, None, "painting… 40 %"),
    ("running", "segment", 0.1, None, "finding the person… 10 %"),
    ("running", "some_new_stage", 0.5, None, "some new stage… 50 %"),
    ("queued", "queued", -1.0, 3, "waiting for the daemon (2 jobs ahead)"),
    ("queued", "queued", -1.0, 1, "waiting for the daemon (next in line)"),
    ("connecting", "", -1.0, None, "connecting to the daemon…"),
    ("starting daemon", "loading models", -1.0, None,
     "starting the daemon (the first time takes a while)…"),
    ("done", "done", 1.0, None, "adding the layers"),
])
def test_progress_reads_as_words(state: str, stage: str, fraction: float,
                                 position: int | None, expected: str) -> None:
    event = SimpleNamespace(state=JobState(state), stage=stage, fraction=fraction,
                            position=position)
    assert describe(event) == expected
    assert "_" not in describe(event)


def test_every_stage_the_spec_names_has_words() -> None:
    for stage in ("queued", "started", "decode", "segment", "encode", "transform", "compose"):
        assert stage_words(stage) != stage
