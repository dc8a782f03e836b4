"""ZeroMQ framing: a header map plus raw pixel frames, checked before use (SPEC.md §2–4).

Why separate from the schema (messages.py): this layer only knows that a
message is ``[msgpack header, *binary frames]`` and that every binary frame is
described by the header. It enforces the size limits and the descriptor/frame
agreement for every kind alike, so the per-kind code never sees a frame whose
length it has not been promised.

Zero-copy: ``pack`` returns the caller's buffers untouched (send them with
``copy=False``); ``unpack`` returns memoryviews over the received frames (receive
with ``copy=False``). Nothing here copies pixels.
"""

from __future__ import annotations

import reprlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import msgpack

from .constants import PROTOCOL_VERSION
from .errors import (
    BAD_FRAME,
    BAD_HEADER,
    BAD_PARAMS,
    UNSUPPORTED_VERSION,
    MessageTooLarge,
    WireError,
)

__all__ = ["DTYPES", "FrameSpec", "Limits", "as_buffer", "pack", "unpack"]

#: element types a frame may carry (version 1: bytes only)
DTYPES: tuple[str, ...] = ("uint8",)
CHANNELS: tuple[int, ...] = (1, 3, 4)
_REPR = reprlib.Repr()  # attributes, not keywords: Python 3.11
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother, _REPR.maxlist, _REPR.maxdict = 3, 60, 60, 4, 4
MAX_ID_LENGTH = 64
#: deepest nesting of maps and lists a header may have (the deepest legal one,
#: ``regions.portrait.strength`` inside the header map, is 3); checked before any
#: field is read, so no value is ever formatted or walked recursively too deep
MAX_HEADER_DEPTH = 8


@dataclass(frozen=True)
class Limits:
    """What a receiver accepts; the daemon announces its own in ``hello_reply``."""

    max_pixels: int = 8192 * 8192
    max_style_pixels: int = 4096 * 4096
    max_message_bytes: int = 4 * 8192 * 8192 + 65536
    max_frames: int = 8
    max_header_bytes: int = 65536

    @classmethod
    def for_pixels(cls, max_pixels: int, **overrides: int) -> Limits:
        """Limits sized for ``max_pixels`` RGBA frames (plus row padding slack)."""
        values: dict[str, int] = {
            "max_pixels": max_pixels,
            "max_style_pixels": min(cls.max_style_pixels, max_pixels),
            "max_message_bytes": 4 * max_pixels + 65536,
        }
        values.update(overrides)
        return cls(**values)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Limits:
        """Read announced limits, keeping defaults for keys a daemon leaves out."""
        known = {k: int(v) for k, v in data.items()
                 if k in cls.__dataclass_fields__ and isinstance(v, int)}
        return cls(**known)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


#: what a client accepts from a daemon: the daemon is trusted to size results
#: like the content it was sent, so only sanity bounds apply
CLIENT_LIMITS = Limits(max_pixels=1 << 31, max_style_pixels=1 << 31,
                       max_message_bytes=1 << 40, max_frames=16, max_header_bytes=16 << 20)


@dataclass(frozen=True)
class FrameSpec:
    """The header's description of one binary frame (SPEC.md §3)."""

    name: str
    width: int
    height: int
    channels: int
    stride: int
    dtype: str = "uint8"

    @property
    def nbytes(self) -> int:
        return self.stride * self.height

    @property
    def pixels(self) -> int:
        return self.width * self.height

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "width": self.width, "height": self.height,
                "channels": self.channels, "dtype": self.dtype, "stride": self.stride}

    @classmethod
    def parse(cls, raw: Any, index: int) -> FrameSpec:
        """Check one descriptor's fields and types (not yet against its frame)."""
        where = f"frames[{index}]"
        if not isinstance(raw, dict):
            raise WireError(f"{where} is not a map", code=BAD_FRAME, field=where)
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            raise WireError(f"{where}.name must be a non-empty string", code=BAD_FRAME,
                            field=f"{where}.name")
        ints = {}
        for key in ("width", "height", "channels", "stride"):
            value = raw.get(key)
            if not _is_int(value) or value < 1:
                raise WireError(f"{where}.{key} must be a positive integer, got "
                                f"{short_repr(value)}",
                                code=BAD_FRAME, field=f"{where}.{key}")
            ints[key] = value
        dtype = raw.get("dtype", "uint8")
        if dtype not in DTYPES:
            raise WireError(f"{where}.dtype {short_repr(dtype)} not supported (only {DTYPES})",
                            code=BAD_FRAME, field=f"{where}.dtype")
        if ints["channels"] not in CHANNELS:
            raise WireError(f"{where}.channels must be one of {CHANNELS}, got {ints['channels']}",
                            code=BAD_FRAME, field=f"{where}.channels")
        if ints["stride"] < ints["width"] * ints["channels"]:
            raise WireError(
                f"{where}.stride {ints['stride']} < width×channels "
                f"{ints['width'] * ints['channels']}", code=BAD_FRAME, field=f"{where}.stride")
        return cls(name=name, dtype=dtype, **ints)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def as_buffer(frame: Any) -> memoryview:
    """A flat byte view of a received frame (``zmq.Frame``, bytes, memoryview) without copying."""
    view = getattr(frame, "buffer", None)
    view = memoryview(frame) if view is None else view
    if view.ndim != 1 or view.format not in ("B", "b", "c"):
        view = view.cast("B")
    return view


def pack(header: dict[str, Any], buffers: Sequence[Any] = ()) -> list[Any]:
    """Frames of one message: the header as msgpack, then the buffers as given.

    The caller has put the ``frames`` descriptors into ``header``; the buffers
    are not touched, so they go out zero-copy with ``send_multipart(copy=False)``.
    """
    return [msgpack.packb(header, use_bin_type=True), *buffers]


def unpack(
    frames: Sequence[Any], limits: Limits
) -> tuple[dict[str, Any], list[tuple[FrameSpec, memoryview]]]:
    """Decode and check a message; return its header and described frame views.

    Raises ``WireError`` (with ``request_id`` set when the id could be read) for
    anything SPEC.md §2–4 forbids, before any pixel byte is looked at.
    """
    if not frames:
        raise WireError("empty message", code=BAD_HEADER)
    header = _unpack_header(as_buffer(frames[0]), limits)
    request_id = header.get("id") if isinstance(header.get("id"), str) else None
    try:
        _check_depth(header)
        _check_common(header)
        return header, _check_frames(header, frames[1:], limits)
    except WireError as err:
        err.request_id = request_id
        raise


def _unpack_header(raw: memoryview, limits: Limits) -> dict[str, Any]:
    if len(raw) > limits.max_header_bytes:
        raise MessageTooLarge(
            f"header is {len(raw)} bytes, limit {limits.max_header_bytes}", field="header")
    try:
        header = msgpack.unpackb(raw, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types on garbage
        raise WireError(f"header is not valid msgpack: {exc}", code=BAD_HEADER) from exc
    if not isinstance(header, dict):
        raise WireError("header is not a map", code=BAD_HEADER)
    return header


def _check_depth(header: dict[str, Any]) -> None:
    """Refuse headers nested deeper than ``MAX_HEADER_DEPTH`` (iteratively: no recursion).

    Why: a value nested a thousand lists deep is legal msgpack but makes any
    recursive walk or ``repr`` of it raise ``RecursionError``; refusing it here
    answers ``bad_params`` under the request's id instead.
    """
    stack: list[tuple[Any, int]] = [(header, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_HEADER_DEPTH:
            raise WireError(f"header nested deeper than {MAX_HEADER_DEPTH} levels",
                            code=BAD_PARAMS, field="header")
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)


def short_repr(value: Any, limit: int = 80) -> str:
    """``repr`` for error messages: bounded in length and depth, whatever the value.

    Why: refusals echo the offending value to the client and the log; a 60 kB
    string must not become a 60 kB reply and log line.
    """
    text = _REPR.repr(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _check_common(header: dict[str, Any]) -> None:
    version = header.get("v")
    if not _is_int(version):
        raise WireError("header field 'v' (protocol version) missing or not an integer",
                        code=BAD_HEADER, field="v")
    request_id = header.get("id")
    unattributed_error = request_id is None and header.get("kind") == "error"
    if not unattributed_error and (
            not isinstance(request_id, str) or not 1 <= len(request_id) <= MAX_ID_LENGTH):
        raise WireError(f"header field 'id' must be a string of 1-{MAX_ID_LENGTH} characters",
                        code=BAD_HEADER, field="id")
    if version != PROTOCOL_VERSION:
        raise WireError(f"protocol version {version} not supported (this side speaks "
                        f"{PROTOCOL_VERSION})", code=UNSUPPORTED_VERSION, field="v")
    if not isinstance(header.get("kind"), str):
        raise WireError("header field 'kind' missing or not a string", code=BAD_HEADER,
                        field="kind")
    token = header.get("token")
    if token is not None and not isinstance(token, str):
        raise WireError("header field 'token' must be a string", code=BAD_HEADER, field="token")


def _check_frames(
    header: dict[str, Any], frames: Sequence[Any], limits: Limits
) -> list[tuple[FrameSpec, memoryview]]:
    raw_specs = header.get("frames", [])
    if not isinstance(raw_specs, list):
        raise WireError("header field 'frames' must be a list", code=BAD_FRAME, field="frames")
    if len(frames) > limits.max_frames or len(raw_specs) > limits.max_frames:
        raise MessageTooLarge(f"{max(len(frames), len(raw_specs))} frames, limit "
                              f"{limits.max_frames}", field="frames")
    if len(raw_specs) != len(frames):
        raise WireError(f"header describes {len(raw_specs)} binary frames, message has "
                        f"{len(frames)}", code=BAD_FRAME, field="frames")
    max_pixels = max(limits.max_pixels, limits.max_style_pixels)
    checked: list[tuple[FrameSpec, memoryview]] = []
    names: set[str] = set()
    for index, (raw, frame) in enumerate(zip(raw_specs, frames, strict=True)):
        spec = FrameSpec.parse(raw, index)
        if spec.name in names:
            raise WireError(f"frame name {short_repr(spec.name)} used twice", code=BAD_FRAME,
                            field=f"frames[{index}].name")
        names.add(spec.name)
        if spec.pixels > max_pixels:
            raise MessageTooLarge(f"frame {spec.name!r} has {spec.pixels} pixels, limit "
                                  f"{max_pixels}", field=f"frames[{index}]")
        if spec.nbytes > limits.max_message_bytes:
            raise MessageTooLarge(f"frame {spec.name!r} is {spec.nbytes} bytes, limit "
                                  f"{limits.max_message_bytes}", field=f"frames[{index}]")
        view = as_buffer(frame)
        if len(view) != spec.nbytes:
            raise WireError(
                f"frame {spec.name!r} is {len(view)} bytes but its descriptor says "
                f"stride {spec.stride} × height {spec.height} = {spec.nbytes}",
                code=BAD_FRAME, field=f"frames[{index}]")
        checked.append((spec, view))
    return checked
