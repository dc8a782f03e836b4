"""Wire format without a daemon: framing, typed messages, their checks (SPEC.md).

Everything here runs in-process (inproc sockets at most) in well under a
second; the daemon's behaviour over real sockets is in test_daemon.py.
"""

from __future__ import annotations

import re
import subprocess
import sys

import msgpack
import numpy as np
import pytest
import zmq

from portrait_style.protocol import errors
from portrait_style.protocol.constants import LAYER_NAMES, PROTOCOL_VERSION
from portrait_style.protocol.framing import CLIENT_LIMITS, FrameSpec, Limits, pack, unpack
from portrait_style.protocol.messages import (
    Cancel,
    Error,
    Hello,
    HelloReply,
    Ping,
    Pixels,
    Pong,
    Progress,
    Result,
    Stylize,
    decode,
    encode,
    style_key,
)
from portrait_style.protocol.request import JobParams, check_regions

LIMITS = Limits.for_pixels(100_000)
RNG = np.random.default_rng(7)


def _image(h: int, w: int, c: int) -> np.ndarray:
    return RNG.integers(0, 256, size=(h, w, c), dtype=np.uint8)


_PARAM_FIELDS = {"outputs", "regions", "whole_image", "max_working_pixels", "mask_feather"}


def _stylize(**overrides) -> Stylize:
    """A stylize message; request parameters among ``overrides`` go into its JobParams."""
    params = {k: overrides.pop(k) for k in list(overrides) if k in _PARAM_FIELDS}
    fields = {"id": "r1", "content": Pixels.from_array(_image(12, 10, 4)),
              "style": Pixels.from_array(_image(8, 8, 3)), "params": JobParams(**params)}
    fields.update(overrides)
    return Stylize(**fields)


def _header(frames: list) -> dict:
    return msgpack.unpackb(frames[0], raw=False)


def _reframe(message: list, /, **changes) -> list:
    """The same message with header fields changed (None removes one)."""
    header = _header(message)
    for key, value in changes.items():
        if value is None:
            header.pop(key, None)
        else:
            header[key] = value
    return [msgpack.packb(header, use_bin_type=True), *message[1:]]


def _refused(frames: list, code: str, limits: Limits = LIMITS) -> errors.WireError:
    with pytest.raises(errors.WireError) as info:
        decode(frames, limits)
    assert info.value.code == code, info.value
    return info.value


# ------------------------------------------------------------------------- pixels


def test_pixels_round_trip_keeps_every_byte_and_shape():
    for shape in [(5, 7, 3), (5, 7, 4), (5, 7, 1)]:
        array = _image(*shape)
        pixels = Pixels.from_array(array)
        assert pixels.shape == shape and pixels.stride == shape[1] * shape[2]
        back = pixels.to_array(squeeze=False)
        assert back.shape == shape and np.array_equal(back, array)
    mask = RNG.integers(0, 256, size=(5, 7), dtype=np.uint8)
    assert Pixels.from_array(mask).to_array().shape == (5, 7)


def test_padded_rows_view_in_place_and_pack_without_padding():
    array = _image(4, 3, 3)
    stride = 3 * 3 + 7
    padded = bytearray(stride * 4)
    for y in range(4):
        padded[y * stride: y * stride + 9] = array[y].tobytes()
    pixels = Pixels.from_buffer(padded, (4, 3, 3), stride=stride)
    assert np.array_equal(pixels.to_array(), array)
    assert pixels.tobytes() == array.tobytes()
    assert style_key(pixels) == style_key(Pixels.from_array(array))


def test_style_key_depends_on_pixels_and_shape():
    array = _image(6, 4, 3)
    key = style_key(Pixels.from_array(array))
    assert len(key) == 64 and key == style_key(Pixels.from_array(array.copy()))
    assert key != style_key(Pixels.from_array(array.reshape(4, 6, 3)))
    changed = array.copy()
    changed[0, 0, 0] ^= 1
    assert key != style_key(Pixels.from_array(changed))


def test_pixels_refuse_wrong_dtype_and_length():
    with pytest.raises(ValueError, match="uint8"):
        Pixels.from_array(np.zeros((2, 2, 3), np.float32))
    with pytest.raises(ValueError, match="bytes"):
        Pixels.from_buffer(b"\0" * 11, (2, 2, 3))


# ----------------------------------------------------------------- message round trips


@pytest.mark.parametrize("message", [
    Hello(id="a", token="t"),
    HelloReply(id="a", daemon_version="0.1", engines={"active": "noop", "available": ["noop"],
                                                     "notes": ["x"]},
               segmenter="selfie", device="cpu", limits=LIMITS.to_dict(), auth_required=True,
               auth_ok=False),
    Ping(id="p"),
    Pong(id="p"),
    Progress(id="j", stage="queued", fraction=0.0, position=2),
    Progress(id="j", stage="segment", fraction=0.25, heartbeat=True),
    Cancel(id="c", target="j", token="t"),
    Error(id="j", code="bad_params", message="nope", field="regions.portrait.strength"),
    Error(id=None, code="bad_header", message="unreadable"),
])
def test_header_only_messages_round_trip(message):
    assert decode(encode(message), CLIENT_LIMITS) == message


def test_stylize_round_trip_with_all_fields():
    content, style, mask = _image(12, 10, 4), _image(8, 8, 3), _image(12, 10, 1)
    message = _stylize(content=Pixels.from_array(content), style=Pixels.from_array(style),
                       mask=Pixels.from_array(mask), style_key=style_key(Pixels.from_array(style)),
                       outputs=("mask", "portrait"),
                       regions={"portrait": {"strength": 0.3, "preserve_color": True}},
                       whole_image=True, max_working_pixels=70_000, mask_feather=2.5,
                       token="secret")
    frames = encode(message)
    assert len(frames) == 4
    assert [d["name"] for d in _header(frames)["frames"]] == ["content", "style", "mask"]
    back = decode(frames, LIMITS)
    assert isinstance(back, Stylize)
    assert np.array_equal(back.content.to_array(), content)
    assert np.array_equal(back.style.to_array(), style)
    assert np.array_equal(back.mask.to_array(), mask[:, :, 0])
    assert back.params.outputs == ("mask", "portrait") and back.params.whole_image
    assert back.params.regions == {"portrait": {"strength": 0.3, "preserve_color": True}}
    assert back.params.max_working_pixels == 70_000 and back.token == "secret"
    assert back.params.mask_feather == 2.5


def test_result_round_trip_and_defaults_of_stylize():
    layers = {"background": _image(6, 5, 4), "mask": _image(6, 5, 1)}
    message = Result(id="j", layers={k: Pixels.from_array(v) for k, v in layers.items()},
                     info={"person_found": True, "timings": {"segment": 0.1}})
    back = decode(encode(message), CLIENT_LIMITS)
    assert back.info == message.info
    assert np.array_equal(back.layers["background"].to_array(), layers["background"])
    # a stylize that leaves everything optional out gets the documented defaults
    plain = decode(_reframe(encode(_stylize()), outputs=None, regions=None, whole_image=None),
                   LIMITS)
    assert plain.params == JobParams() and plain.params.outputs == LAYER_NAMES


def test_unknown_header_fields_are_ignored():
    frames = _reframe(encode(Ping(id="p")), colour="mauve", future={"x": [1, 2]})
    assert decode(frames, LIMITS) == Ping(id="p")


def test_messages_travel_zero_copy_over_zmq():
    """A received frame is viewed in place: the array's memory is ZeroMQ's buffer."""
    ctx = zmq.Context()
    a, b = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
    try:
        a.bind("inproc://zero-copy")
        b.connect("inproc://zero-copy")
        content = _image(64, 64, 4)
        a.send_multipart(encode(_stylize(content=Pixels.from_array(content))), copy=False)
        frames = b.recv_multipart(copy=False)
        message = decode(frames, LIMITS)
        view = message.content.to_array()
        frame_address = np.frombuffer(frames[1].buffer, np.uint8).ctypes.data
        assert view.ctypes.data == frame_address
        assert np.array_equal(view, content)
    finally:
        a.close(linger=0)
        b.close(linger=0)
        ctx.term()


# ------------------------------------------------------------------- refused messages


def test_short_and_garbled_messages_are_bad_header():
    _refused([], errors.BAD_HEADER)
    _refused([b"\xc1\xc1 not msgpack"], errors.BAD_HEADER)
    _refused([msgpack.packb([1, 2, 3])], errors.BAD_HEADER)
    ping = encode(Ping(id="p"))
    assert _refused(_reframe(ping, v=None), errors.BAD_HEADER).field == "v"
    assert _refused(_reframe(ping, id=None), errors.BAD_HEADER).field == "id"
    assert _refused(_reframe(ping, id="x" * 65), errors.BAD_HEADER).field == "id"
    assert _refused(_reframe(ping, kind=None), errors.BAD_HEADER).request_id == "p"
    assert _refused(_reframe(ping, token=5), errors.BAD_HEADER).field == "token"


def test_version_and_kind_are_checked_and_the_id_kept():
    ping = encode(Ping(id="p7"))
    err = _refused(_reframe(ping, v=PROTOCOL_VERSION + 1), errors.UNSUPPORTED_VERSION)
    assert err.request_id == "p7"
    err = _refused(_reframe(ping, kind="teleport"), errors.UNKNOWN_KIND)
    assert err.request_id == "p7" and "teleport" in err.message


def test_header_size_limit():
    ping = encode(Ping(id="p"))
    big = _reframe(ping, padding="x" * LIMITS.max_header_bytes)
    _refused(big, errors.TOO_LARGE)


@pytest.mark.parametrize(("change", "field"), [
    ({"height": 13}, "frames[0]"),             # length no longer stride × height
    ({"stride": 39}, "frames[0].stride"),      # shorter than width × channels
    ({"channels": 2}, "frames[0].channels"),
    ({"dtype": "float32"}, "frames[0].dtype"),
    ({"height": 0}, "frames[0].height"),
    ({"width": "10"}, "frames[0].width"),
    ({"width": True}, "frames[0].width"),
    ({"name": ""}, "frames[0].name"),
])
def test_descriptor_faults_are_bad_frame(change, field):
    frames = encode(_stylize())
    descriptors = _header(frames)["frames"]
    descriptors[0].update(change)
    err = _refused(_reframe(frames, frames=descriptors), errors.BAD_FRAME)
    assert err.field == field and err.request_id == "r1"


def test_frame_count_and_names():
    frames = encode(_stylize())
    _refused(frames[:-1], errors.BAD_FRAME)                         # descriptor without frame
    _refused([*frames, b"extra"], errors.BAD_FRAME)                 # frame without descriptor
    descriptors = _header(frames)["frames"]
    descriptors[1]["name"] = "content"
    descriptors[1].update({k: descriptors[0][k] for k in ("width", "height", "channels",
                                                          "stride")})
    _refused(_reframe([frames[0], frames[1], frames[1]], frames=descriptors), errors.BAD_FRAME)
    too_many = Limits(max_frames=1)
    _refused(frames, errors.TOO_LARGE, too_many)


def test_pixel_and_byte_limits_are_too_large_before_reading():
    big = _stylize(content=Pixels.from_array(_image(400, 300, 3)))  # 120 000 px > 100 000
    _refused(encode(big), errors.TOO_LARGE)
    frames = encode(_stylize())
    descriptors = _header(frames)["frames"]
    descriptors[0].update(width=5000, height=5000, stride=20000)   # claims 25 MP
    _refused(_reframe(frames, frames=descriptors), errors.TOO_LARGE)
    _refused(frames, errors.TOO_LARGE, Limits(max_message_bytes=100))
    style_limits = Limits(max_pixels=100_000, max_style_pixels=50)
    err = _refused(frames, errors.TOO_LARGE, style_limits)
    assert err.field == "frames.style"


@pytest.mark.parametrize(("message", "code", "field"), [
    (_stylize(content=None, style=Pixels.from_array(_image(8, 8, 3))), errors.BAD_FRAME,
     "frames"),
    (_stylize(content=Pixels.from_array(_image(12, 10, 1))), errors.BAD_FRAME,
     "frames.content"),
    (_stylize(style=Pixels.from_array(_image(8, 8, 1))), errors.BAD_FRAME, "frames.style"),
    (_stylize(mask=Pixels.from_array(_image(11, 10, 1))), errors.BAD_FRAME, "frames.mask"),
    (_stylize(mask=Pixels.from_array(_image(12, 10, 3))), errors.BAD_FRAME, "frames.mask"),
    (_stylize(style=None), errors.BAD_PARAMS, "style_key"),
    (_stylize(style_key="abc"), errors.BAD_PARAMS, "style_key"),
    (_stylize(outputs=()), errors.BAD_PARAMS, "outputs"),
    (_stylize(outputs=("portrait", "sketch")), errors.BAD_PARAMS, "outputs"),
    (_stylize(regions={"sky": {}}), errors.BAD_PARAMS, "regions.sky"),
    (_stylize(regions={"portrait": {"strength": 1.5}}), errors.BAD_PARAMS,
     "regions.portrait.strength"),
    (_stylize(regions={"portrait": {"strength": float("nan")}}), errors.BAD_PARAMS,
     "regions.portrait.strength"),
    (_stylize(regions={"background": {"w_high": "1"}}), errors.BAD_PARAMS,
     "regions.background.w_high"),
    (_stylize(regions={"background": {"preserve_color": 1}}), errors.BAD_PARAMS,
     "regions.background.preserve_color"),
    (_stylize(regions={"portrait": {"sharpness": 1.0}}), errors.BAD_PARAMS,
     "regions.portrait.sharpness"),
    (_stylize(max_working_pixels=100), errors.BAD_PARAMS, "max_working_pixels"),
    (_stylize(mask_feather=-1.0), errors.BAD_PARAMS, "mask_feather"),
    (_stylize(mask_feather=1e6), errors.BAD_PARAMS, "mask_feather"),
])
def test_stylize_fields_are_validated_naming_the_field(message, code, field):
    err = _refused(encode(message), code)
    assert err.field == field and err.request_id == "r1"


def test_stylize_refuses_unknown_frames_and_header_only_kinds_refuse_frames():
    frames = encode(_stylize())
    descriptors = _header(frames)["frames"]
    descriptors[1]["name"] = "texture"
    _refused(_reframe(frames, frames=descriptors), errors.BAD_FRAME)
    ping = pack({"v": PROTOCOL_VERSION, "kind": "ping", "id": "p",
                 "frames": [FrameSpec("x", 1, 1, 1, 1).to_dict()]}, [b"\0"])
    _refused(ping, errors.BAD_FRAME)


def test_check_regions_cleans_numbers():
    assert check_regions({"portrait": {"strength": 1, "w_low": 0.5}}) == {
        "portrait": {"strength": 1.0, "w_low": 0.5}}
    assert check_regions(None) == {}


def test_deeply_nested_values_are_bad_params_not_a_crash():
    deep: object = 1.0
    for _ in range(2000):
        deep = [deep]
    with pytest.raises(errors.WireError) as info:
        JobParams(regions={"portrait": {"strength": deep}}).check()
    assert info.value.code == errors.BAD_PARAMS
    assert info.value.field == "regions.portrait.strength" and len(info.value.message) < 200


def test_unpack_returns_views_in_order():
    header = {"v": PROTOCOL_VERSION, "kind": "result", "id": "x",
              "frames": [FrameSpec("a", 2, 1, 1, 2).to_dict(),
                         FrameSpec("b", 1, 1, 3, 3).to_dict()]}
    got_header, checked = unpack(pack(header, [b"ab", b"xyz"]), LIMITS)
    assert got_header["id"] == "x"
    assert [(spec.name, bytes(view)) for spec, view in checked] == [("a", b"ab"), ("b", b"xyz")]


# -------------------------------------------------------------------- host constraints


def test_protocol_imports_neither_torch_numpy_nor_the_daemon():
    """Hosts run the client with only pyzmq and msgpack (SPEC.md, DESIGN.md §2)."""
    code = (
        "import sys\n"
        "import portrait_style.protocol.client, portrait_style.protocol.messages\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy')"
        " or m.startswith('portrait_style.daemon'))\n"
        "print(','.join(bad))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.strip() == ""


def test_messages_work_without_numpy():
    """With numpy unimportable, pixels travel as bytes and come back as Pixels."""
    code = (
        "import sys\n"
        "sys.modules['numpy'] = None\n"
        "from portrait_style.protocol.messages import Pixels, Result, Stylize, decode, encode\n"
        "from portrait_style.protocol.messages import style_key\n"
        "from portrait_style.protocol.framing import CLIENT_LIMITS\n"
        "px = Pixels.from_buffer(bytes(range(24)), (2, 3, 4))\n"
        "msg = Stylize(id='a', content=px, style=px, style_key=style_key(px))\n"
        "back = decode(encode(msg), CLIENT_LIMITS)\n"
        "assert back.content.tobytes() == bytes(range(24)), back\n"
        "res = decode(encode(Result(id='a', layers={'mask': Pixels.from_buffer(b'xy', (1, 2))})),"
        " CLIENT_LIMITS)\n"
        "print(res.layers['mask'].tobytes().decode())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "xy"


def test_one_knob_parser_for_text_and_typed_values():
    from portrait_style.protocol.knobs import KnobError, parse_param, typed_overrides

    assert parse_param("Portrait.W_HIGH = 0.3") == ("portrait", "w_high", 0.3)
    assert typed_overrides({"background": {"strength": "0.5", "preserve_color": "on"}}) == {
        "background": {"strength": 0.5, "preserve_color": True}}
    for bad, words in [("portrait.strength=2", "0..1"), ("face.strength=1", "unknown region"),
                       ("portrait.strength", "REGION.KNOB=VALUE"),
                       ("portrait.preserve_color=maybe", "true/false")]:
        with pytest.raises(KnobError, match=re.escape(words)):
            parse_param(bad)
