"""Typed messages of the wire protocol and their one serializer (SPEC.md §5).

Why typed classes rather than dicts: both sides (daemon and every host) build
and read the same messages, and a misspelt field should fail in one place with
the stable error code, not as a ``KeyError`` deep in the pipeline. Each class
knows its header fields and its binary frames; ``encode``/``decode`` turn any of
them into ZeroMQ frames and back through ``framing``.

Pixels travel as ``Pixels``: a flat byte view plus its geometry. It works with
no numpy at all (hosts may lack it) and gives a zero-copy numpy view when numpy
is present.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from .constants import LAYER_NAMES, PROTOCOL_VERSION
from .errors import BAD_FRAME, BAD_HEADER, BAD_PARAMS, TOO_LARGE, UNKNOWN_KIND, WireError
from .framing import FrameSpec, Limits, as_buffer, pack, unpack
from .request import JobParams

__all__ = [
    "Cancel", "Error", "Hello", "HelloReply", "Message", "Ping", "Pixels", "Pong", "Progress",
    "Result", "Stylize", "decode", "encode", "style_key",
]



# --------------------------------------------------------------------------- pixels


@dataclass(frozen=True)
class Pixels:
    """An 8-bit image as a flat buffer: ``height`` rows of ``stride`` bytes.

    ``data`` is whatever supports the buffer protocol (bytes, a memoryview of a
    received ZeroMQ frame, a numpy array); it is never copied here.
    """

    data: Any
    width: int
    height: int
    channels: int
    stride: int

    @classmethod
    def from_buffer(cls, data: Any, shape: Sequence[int], stride: int | None = None) -> Pixels:
        """Wrap raw bytes of shape (height, width[, channels]) without copying."""
        height, width = int(shape[0]), int(shape[1])
        channels = int(shape[2]) if len(shape) > 2 else 1
        view = as_buffer(data)
        stride = width * channels if stride is None else int(stride)
        if len(view) != stride * height:
            raise ValueError(f"buffer is {len(view)} bytes, expected {stride}×{height}")
        return cls(view, width, height, channels, stride)

    @classmethod
    def from_array(cls, array: Any) -> Pixels:
        """Wrap a uint8 numpy array H×W, H×W×1, H×W×3 or H×W×4.

        Contiguous arrays (the usual case) are wrapped as they are; other
        layouts are made contiguous once, which is the one copy allowed.
        """
        import numpy as np

        array = np.asarray(array)
        if array.dtype != np.uint8:
            raise ValueError(f"pixels must be uint8, got {array.dtype}")
        if array.ndim == 2:
            array = array[:, :, None]
        if array.ndim != 3:
            raise ValueError(f"pixels must be H×W or H×W×C, got shape {array.shape}")
        array = np.ascontiguousarray(array)
        height, width, channels = array.shape
        return cls(memoryview(array).cast("B"), width, height, channels, width * channels)

    @classmethod
    def coerce(cls, image: Any) -> Pixels:
        """Accept ``Pixels``, a ``(buffer, shape)`` pair or a numpy array."""
        if isinstance(image, Pixels):
            return image
        if isinstance(image, tuple) and len(image) == 2:
            return cls.from_buffer(image[0], image[1])
        return cls.from_array(image)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, self.channels)

    @property
    def nbytes(self) -> int:
        return self.stride * self.height

    def spec(self, name: str) -> FrameSpec:
        return FrameSpec(name=name, width=self.width, height=self.height,
                         channels=self.channels, stride=self.stride)

    def rows(self) -> Iterator[memoryview]:
        """The rows without padding, as views."""
        view = as_buffer(self.data)
        row = self.width * self.channels
        if self.stride == row:
            yield view
            return
        for y in range(self.height):
            yield view[y * self.stride: y * self.stride + row]

    def tobytes(self) -> bytes:
        """The pixels tightly packed (a copy): for hosts without numpy."""
        return b"".join(bytes(r) for r in self.rows())

    def to_array(self, *, squeeze: bool = True) -> Any:
        """A zero-copy numpy view (read-only with pyzmq < 25 for received frames).

        One-channel images come back H×W when ``squeeze`` (the mask layer's
        shape in ``StylizeResult``), H×W×C otherwise.
        """
        import numpy as np

        view = as_buffer(self.data)
        array = np.ndarray(shape=(self.height, self.width, self.channels), dtype=np.uint8,
                           buffer=view, strides=(self.stride, self.channels, 1))
        return array[:, :, 0] if squeeze and self.channels == 1 else array


def style_key(pixels: Pixels) -> str:
    """The style's cache key (SPEC.md §5 "Style key"): sha256 of shape and packed rows."""
    digest = hashlib.sha256(f"{pixels.width}x{pixels.height}x{pixels.channels}:".encode())
    for row in pixels.rows():
        digest.update(row)
    return digest.hexdigest()


# ------------------------------------------------------------------------ validation


def _field(header: Mapping[str, Any], key: str, kind: type | tuple[type, ...], default: Any = ...,
           *, code: str = BAD_HEADER) -> Any:
    """Read one header field, checking its type (bool is not an int here)."""
    if key not in header or header[key] is None:
        if default is ...:
            raise WireError(f"header field {key!r} is required", code=code, field=key)
        return default
    value = header[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        raise WireError(f"header field {key!r} has the wrong type (bool)", code=code, field=key)
    if not isinstance(value, kinds):
        names = "/".join(k.__name__ for k in kinds)
        raise WireError(f"header field {key!r} must be {names}, got {type(value).__name__}",
                        code=code, field=key)
    return value


# -------------------------------------------------------------------------- messages


@dataclass
class Message:
    """Fields every message has (besides ``v`` and ``kind``)."""

    KIND: ClassVar[str] = ""

    id: str
    token: str | None = field(default=None, kw_only=True, repr=False)

    def header_fields(self) -> dict[str, Any]:
        """The kind's own header fields (not ``v``/``kind``/``id``/``frames``)."""
        return {}

    def frames(self) -> list[tuple[str, Pixels]]:
        """The kind's binary frames, by name, in wire order."""
        return []

    @classmethod
    def parse(cls, header: dict[str, Any], frames: dict[str, Pixels], limits: Limits) -> Message:
        """Build the message from a checked header and frames; validate its own fields."""
        if frames:
            raise WireError(f"{cls.KIND} carries no binary frames", code=BAD_FRAME,
                            field="frames")
        return cls(id=header["id"], token=header.get("token"))


@dataclass
class Hello(Message):
    KIND: ClassVar[str] = "hello"


@dataclass
class HelloReply(Message):
    """Who the daemon is and what it accepts (SPEC.md §5 "hello_reply").

    The identity fields (pid, host, installation, uptime, queue) let a client
    say which daemon it is using, notice one from another installation, and
    watch a local daemon's process.
    """

    KIND: ClassVar[str] = "hello_reply"

    protocol: int = PROTOCOL_VERSION
    daemon_version: str = ""
    engines: dict[str, Any] = field(default_factory=dict)
    segmenter: str | None = None
    device: str = ""
    limits: dict[str, int] = field(default_factory=dict)
    heartbeat_s: float = 2.0
    auth_required: bool = False
    auth_ok: bool = True
    pipeline: dict[str, Any] = field(default_factory=dict)
    pid: int = 0
    host: str = ""
    installation: str = ""
    uptime_s: float = 0.0
    queue: int = 0
    running: int = 0

    def header_fields(self) -> dict[str, Any]:
        base = {f.name for f in fields(Message)}
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in base}

    def as_dict(self) -> dict[str, Any]:
        return self.header_fields()

    @classmethod
    def parse(cls, header: dict[str, Any], frames: dict[str, Pixels], limits: Limits) -> Message:
        base = super().parse(header, frames, limits)
        return cls(
            id=base.id,
            protocol=_field(header, "protocol", int),
            daemon_version=str(header.get("daemon_version", "")),
            engines=_field(header, "engines", dict, {}),
            segmenter=header.get("segmenter"),
            device=str(header.get("device", "")),
            limits=_field(header, "limits", dict, {}),
            heartbeat_s=float(_field(header, "heartbeat_s", (int, float), 2.0)),
            auth_required=_field(header, "auth_required", bool, False),
            auth_ok=_field(header, "auth_ok", bool, True),
            pipeline=_field(header, "pipeline", dict, {}),
            pid=_field(header, "pid", int, 0),
            host=str(header.get("host", "")),
            installation=str(header.get("installation", "")),
            uptime_s=float(_field(header, "uptime_s", (int, float), 0.0)),
            queue=_field(header, "queue", int, 0),
            running=_field(header, "running", int, 0),
        )


@dataclass
class Ping(Message):
    KIND: ClassVar[str] = "ping"


@dataclass
class Pong(Message):
    KIND: ClassVar[str] = "pong"


@dataclass
class Stylize(Message):
    """One stylize request: pixels as frames, everything else in ``params``.

    SPEC.md §5 "stylize" lists the fields; ``protocol.request.JobParams`` owns
    them and their validation.
    """

    KIND: ClassVar[str] = "stylize"

    content: Pixels | None = None
    style: Pixels | None = None
    style_key: str | None = None
    mask: Pixels | None = None
    params: JobParams = field(default_factory=JobParams)

    def header_fields(self) -> dict[str, Any]:
        fields = self.params.to_header()
        if self.style_key is not None:
            fields["style_key"] = self.style_key
        return fields

    def frames(self) -> list[tuple[str, Pixels]]:
        pairs = [("content", self.content), ("style", self.style), ("mask", self.mask)]
        return [(name, pixels) for name, pixels in pairs if pixels is not None]

    @classmethod
    def parse(cls, header: dict[str, Any], frames: dict[str, Pixels], limits: Limits) -> Message:
        unknown = set(frames) - {"content", "style", "mask"}
        if unknown:
            raise WireError(f"unexpected frame(s) {sorted(unknown)}; stylize takes content, "
                            "style, mask", code=BAD_FRAME, field="frames")
        content, style, mask = frames.get("content"), frames.get("style"), frames.get("mask")
        if content is None:
            raise WireError("stylize needs a 'content' frame", code=BAD_FRAME, field="frames")
        if content.channels not in (3, 4):
            raise WireError(f"content must be RGB or RGBA, got {content.channels} channel(s)",
                            code=BAD_FRAME, field="frames.content")
        if content.width * content.height > limits.max_pixels:
            raise WireError(f"content has {content.width * content.height} pixels, limit "
                            f"{limits.max_pixels}", code=TOO_LARGE, field="frames.content")
        if style is not None:
            if style.channels not in (3, 4):
                raise WireError(f"style must be RGB or RGBA, got {style.channels} channel(s)",
                                code=BAD_FRAME, field="frames.style")
            if style.width * style.height > limits.max_style_pixels:
                raise WireError(f"style has {style.width * style.height} pixels, limit "
                                f"{limits.max_style_pixels}", code=TOO_LARGE,
                                field="frames.style")
        if mask is not None and (mask.channels != 1 or (mask.width, mask.height)
                                 != (content.width, content.height)):
            raise WireError(f"mask must be 1 channel {content.width}×{content.height}, got "
                            f"{mask.channels} channel(s) {mask.width}×{mask.height}",
                            code=BAD_FRAME, field="frames.mask")
        key = _field(header, "style_key", str, None, code=BAD_PARAMS)
        if key is not None and (len(key) != 64 or any(c not in "0123456789abcdef" for c in key)):
            raise WireError("style_key must be 64 lowercase hex digits (sha256)",
                            code=BAD_PARAMS, field="style_key")
        if style is None and key is None:
            raise WireError("stylize needs a 'style' frame or a 'style_key'", code=BAD_PARAMS,
                            field="style_key")
        return cls(id=header["id"], token=header.get("token"), content=content, style=style,
                   style_key=key, mask=mask, params=JobParams.from_header(header))


@dataclass
class Progress(Message):
    KIND: ClassVar[str] = "progress"

    stage: str = ""
    fraction: float = 0.0
    position: int | None = None
    heartbeat: bool = False

    def header_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {"stage": self.stage, "fraction": self.fraction}
        if self.position is not None:
            fields["position"] = self.position
        if self.heartbeat:
            fields["heartbeat"] = True
        return fields

    @classmethod
    def parse(cls, header: dict[str, Any], frames: dict[str, Pixels], limits: Limits) -> Message:
        super().parse(header, frames, limits)
        return cls(id=header["id"], stage=_field(header, "stage", str),
                   fraction=float(_field(header, "fraction", (int, float))),
                   position=_field(header, "position", int, None),
                   heartbeat=_field(header, "heartbeat", bool, False))


@dataclass
class Result(Message):
    KIND: ClassVar[str] = "result"

    layers: dict[str, Pixels] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def header_fields(self) -> dict[str, Any]:
        return {"info": self.info}

    def frames(self) -> list[tuple[str, Pixels]]:
        return list(self.layers.items())

    @classmethod
    def parse(cls, header: dict[str, Any], frames: dict[str, Pixels], limits: Limits) -> Message:
        unknown = set(frames) - set(LAYER_NAMES)
        if unknown:
            raise WireError(f"result carries unknown layer(s) {sorted(unknown)}",
                            code=BAD_FRAME, field="frames")
        return cls(id=header["id"], layers=dict(frames), info=_field(header, "info", dict, {}))


@dataclass
class Cancel(Message):
    KIND: ClassVar[str] = "cancel"

    target: str = ""

    def header_fields(self) -> dict[str, Any]:
        return {"target": self.target}

    @classmethod
    def parse(cls, header: dict[str, Any], frames: dict[str, Pixels], limits: Limits) -> Message:
        base = super().parse(header, frames, limits)
        return cls(id=base.id, token=base.token, target=_field(header, "target", str))


@dataclass
class Error(Message):
    """An error reply. ``id`` is None when the offending header was unreadable."""

    KIND: ClassVar[str] = "error"

    id: str | None  # type: ignore[assignment]
    code: str = "internal"
    message: str = ""
    field: str | None = None

    def header_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            fields["field"] = self.field
        return fields

    @classmethod
    def parse(cls, header: dict[str, Any], frames: dict[str, Pixels], limits: Limits) -> Message:
        super().parse(header, frames, limits)
        field_name = header.get("field")
        return cls(id=header["id"], code=_field(header, "code", str),
                   message=str(header.get("message", "")),
                   field=field_name if isinstance(field_name, str) else None)


KINDS: dict[str, type[Message]] = {
    cls.KIND: cls
    for cls in (Hello, HelloReply, Ping, Pong, Stylize, Progress, Result, Cancel, Error)
}


# ------------------------------------------------------------------------ serializer


def encode(message: Message) -> list[Any]:
    """ZeroMQ frames for ``message``: header, then its pixel buffers (not copied)."""
    header: dict[str, Any] = {"v": PROTOCOL_VERSION, "kind": message.KIND, "id": message.id}
    if message.token is not None:
        header["token"] = message.token
    header.update(message.header_fields())
    pairs = message.frames()
    if pairs:
        header["frames"] = [pixels.spec(name).to_dict() for name, pixels in pairs]
    return pack(header, [pixels.data for _, pixels in pairs])


def decode(frames: Sequence[Any], limits: Limits) -> Message:
    """Check and decode received frames into a typed message (WireError on any fault)."""
    header, checked = unpack(frames, limits)
    kind = header["kind"]
    cls = KINDS.get(kind)
    if cls is None:
        err = WireError(f"unknown message kind {kind!r}", code=UNKNOWN_KIND, field="kind")
        err.request_id = header["id"]
        raise err
    pixels = {spec.name: Pixels(view, spec.width, spec.height, spec.channels, spec.stride)
              for spec, view in checked}
    try:
        return cls.parse(header, pixels, limits)
    except WireError as err:
        err.request_id = header["id"]
        raise
