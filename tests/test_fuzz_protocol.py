"""Property-based fuzzing of the decoder: every kind, every frame descriptor field.

Why: the daemon decodes whatever anyone sends; the only acceptable outcomes
are a message or a ``WireError`` with a stable code, a bounded message and the
request's id when it had one — never another exception (which the daemon
would answer as ``internal`` without the id), never a huge echo. Examples are
derandomized and counted, so CI runs the same bounded set every time.
"""

from __future__ import annotations

import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portrait_style.protocol.errors import ERROR_CODES, MAX_REFUSAL_CHARS, WireError
from portrait_style.protocol.framing import CLIENT_LIMITS, Limits
from portrait_style.protocol.messages import (
    Cancel,
    Error,
    Hello,
    Ping,
    Pong,
    Progress,
    decode,
    encode,
)

KINDS = ["hello", "hello_reply", "ping", "pong", "stylize", "progress", "result", "cancel",
         "error", "nonsense"]
FUZZ = settings(max_examples=300, derandomize=True, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])
LIMITS = Limits(max_pixels=4096, max_style_pixels=4096, max_message_bytes=65536)

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**64 - 1),
                    st.floats(allow_nan=True), st.text(max_size=80), st.binary(max_size=40))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=20)
#: fields a real message may carry, so the fuzz reaches past the first check
FIELDS = ["v", "kind", "id", "frames", "token", "target", "style_key", "outputs", "regions",
          "whole_image", "max_working_pixels", "mask_feather", "stage", "fraction",
          "position", "heartbeat", "code", "message", "field", "info", "protocol", "limits",
          "engines", "heartbeat_s", "auth_required", "auth_ok"]
descriptor = st.fixed_dictionaries({}, optional={
    "name": st.one_of(st.sampled_from(["content", "style", "mask", "background"]), values),
    "width": st.one_of(st.integers(-2, 70), values),
    "height": st.one_of(st.integers(-2, 70), values),
    "channels": st.one_of(st.sampled_from([0, 1, 2, 3, 4, 5]), values),
    "stride": st.one_of(st.integers(-2, 300), values),
    "dtype": st.one_of(st.just("uint8"), values)})


@st.composite
def headers(draw: st.DrawFn) -> tuple[dict, list[bytes]]:
    header = {"v": draw(st.one_of(st.just(1), values)),
              "kind": draw(st.one_of(st.sampled_from(KINDS), values)),
              "id": draw(st.one_of(st.text(min_size=1, max_size=64), values))}
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=6, unique=True)):
        header[name] = draw(values)
    specs = draw(st.lists(descriptor, max_size=4))
    if specs or draw(st.booleans()):
        header["frames"] = specs
    frames = [draw(st.binary(max_size=600)) for _ in range(draw(st.integers(0, 4)))]
    return header, frames


def _check_outcome(raw_header: bytes, frames: list[bytes], limits: Limits) -> None:
    try:
        decode([raw_header, *frames], limits)
    except WireError as err:
        assert err.code in ERROR_CODES
        assert len(err.message) <= MAX_REFUSAL_CHARS
        assert err.request_id is None or isinstance(err.request_id, str)


@FUZZ
@given(headers())
def test_any_header_decodes_or_is_refused_with_a_code(case):
    header, frames = case
    _check_outcome(msgpack.packb(header, use_bin_type=True), frames, LIMITS)
    _check_outcome(msgpack.packb(header, use_bin_type=True), frames, CLIENT_LIMITS)


@FUZZ
@given(st.binary(max_size=200), st.lists(st.binary(max_size=64), max_size=3))
def test_garbage_headers_are_refused(raw, frames):
    _check_outcome(raw, frames, LIMITS)


@FUZZ
@given(st.text(min_size=1, max_size=64), st.integers(1, 64), st.integers(1, 64),
       st.sampled_from([1, 3, 4]), st.integers(0, 16), st.integers(-2, 2))
def test_frame_descriptors_are_checked_against_their_frames(request_id, width, height,
                                                            channels, padding, off_by):
    stride = width * channels + padding
    spec = {"name": "content", "width": width, "height": height, "channels": channels,
            "dtype": "uint8", "stride": stride}
    header = msgpack.packb({"v": 1, "kind": "stylize", "id": request_id, "frames": [spec],
                            "style_key": "0" * 64}, use_bin_type=True)
    frame = bytes(max(0, stride * height + off_by))
    try:
        decode([header, frame], Limits())
        assert off_by == 0 and channels in (3, 4)
    except WireError as err:
        assert err.request_id == request_id
        assert off_by != 0 or channels == 1 or err.code == "bad_frame"


@FUZZ
@given(st.text(min_size=1, max_size=64), st.text(max_size=40), st.floats(0, 1),
       st.one_of(st.none(), st.integers(1, 100)), st.booleans())
def test_simple_kinds_round_trip(request_id, text, fraction, position, heartbeat):
    messages = [Hello(id=request_id), Ping(id=request_id), Pong(id=request_id),
                Cancel(id=request_id, target=text or "x"),
                Progress(id=request_id, stage="queued" if position else (text or "s"),
                         fraction=fraction, position=position, heartbeat=heartbeat),
                Error(id=request_id, code="busy", message=text)]
    for message in messages:
        back = decode(encode(message), CLIENT_LIMITS)
        assert type(back) is type(message)
        assert back.header_fields() == message.header_fields() and back.id == request_id


@settings(max_examples=60, derandomize=True, deadline=None)
# deeper than msgpack packs (511) is refused by its unpacker: bad_header, id null
@given(st.sampled_from(FIELDS[3:] + ["frames.width", "frames.name"]), st.integers(9, 500))
def test_deep_nesting_anywhere_is_bad_params_with_the_id(where, depth):
    nested: object = 1
    for _ in range(depth):
        nested = [nested]
    spec = {"name": "content", "width": 2, "height": 2, "channels": 3, "dtype": "uint8",
            "stride": 6}
    header = {"v": 1, "kind": "stylize", "id": "deep", "frames": [spec], "style_key": "0" * 64}
    if where.startswith("frames."):
        spec[where.partition(".")[2]] = nested
    else:
        header[where] = nested
    try:
        decode([msgpack.packb(header, use_bin_type=True), bytes(12)], Limits())
    except WireError as err:
        assert (err.code, err.request_id) == ("bad_params", "deep")
    else:
        raise AssertionError("accepted a header nested thousands deep")
