"""Press keys and move the pointer on an X display from a test, as an artist would.

Why here and in plain sockets: the editors' chroot has no xdotool, and GIMP's
Undo has no procedure a script can call — only the artist's Ctrl+Z (or the
menu) undoes. This speaks just enough of the X11 protocol (connection setup,
QueryExtension, GetKeyboardMapping, the XTEST extension's FakeInput) over the
display's socket to send real input events, the ones the X server would get
from a keyboard and a mouse. Standard library only.

Reaches Xvfb's abstract socket ``@/tmp/.X11-unix/XN`` (shared with the chroot,
see ``editors.xvfb_session``); no authorisation (Xvfb as the tests start it).
"""

from __future__ import annotations

import socket
import struct
import time
from types import TracebackType

__all__ = ["XInput", "KEYSYMS"]

#: the keysyms the tests need (X11's keysymdef.h)
KEYSYMS = {"Control_L": 0xFFE3, "Shift_L": 0xFFE1, "Escape": 0xFF1B, "Return": 0xFF0D,
           " ": 0x20, "-": 0x2D, "/": 0x2F,
           **{chr(c): c for c in range(ord("a"), ord("z") + 1)}}
_KEY_PRESS, _KEY_RELEASE, _BUTTON_PRESS, _BUTTON_RELEASE, _MOTION = 2, 3, 4, 5, 6
_QUERY_EXTENSION, _GET_INPUT_FOCUS, _GET_KEYBOARD_MAPPING = 98, 43, 101
_QUERY_POINTER, _SET_INPUT_FOCUS, _POINTER_ROOT = 38, 42, 1
_XTEST_GET_VERSION, _XTEST_FAKE_INPUT = 0, 2


def _pad(n: int) -> int:
    return (4 - n % 4) % 4


class XInput:
    """One connection to ``display`` (":N") that sends XTEST input events."""

    def __init__(self, display: str, timeout: float = 10.0) -> None:
        number = int(display.lstrip(":").split(".")[0])
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        self._sock.connect(f"\0/tmp/.X11-unix/X{number}")
        self._setup()
        self._xtest = self._query_extension(b"XTEST")
        self._request(struct.pack("<BBHBxH", self._xtest, _XTEST_GET_VERSION, 2, 2, 2),
                      reply=True)
        self._keymap = self._keyboard_mapping()

    # ----------------------------------------------------------- protocol

    def _recv(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            piece = self._sock.recv(size - len(data))
            if not piece:
                raise ConnectionError("the X server closed the connection")
            data += piece
        return data

    def _setup(self) -> None:
        self._sock.sendall(struct.pack("<BxHHHHxx", ord("l"), 11, 0, 0, 0))
        head = self._recv(8)
        status, _, _, _, extra = struct.unpack("<BBHHH", head)
        body = self._recv(extra * 4)
        if status != 1:
            raise ConnectionError(f"X server refused the connection: {body[:80]!r}")
        vendor_len, _, screens, formats = struct.unpack("<HHBB", body[16:22])
        self._min_keycode, self._max_keycode = body[26], body[27]
        offset = 32 + vendor_len + _pad(vendor_len) + 8 * formats
        if screens < 1:
            raise ConnectionError("the X server has no screen")
        self.root = struct.unpack("<I", body[offset:offset + 4])[0]

    def _request(self, data: bytes, reply: bool = False) -> bytes:
        self._sock.sendall(data)
        if not reply:
            return b""
        while True:
            packet = self._recv(32)
            if packet[0] == 0:
                raise RuntimeError(f"X error {packet[1]} for request {packet[10]}")
            if packet[0] == 1:
                (length,) = struct.unpack("<I", packet[4:8])
                return packet + self._recv(length * 4)
            # an event: nobody asked for any, skip it

    def _query_extension(self, name: bytes) -> int:
        size = len(name)
        data = struct.pack("<BxHHxx", _QUERY_EXTENSION, 2 + (size + _pad(size)) // 4, size)
        answer = self._request(data + name + b"\0" * _pad(size), reply=True)
        present, opcode = answer[8], answer[9]
        if not present:
            raise RuntimeError(f"the X server has no {name.decode()} extension")
        return opcode

    def _keyboard_mapping(self) -> dict[int, int]:
        count = self._max_keycode - self._min_keycode + 1
        answer = self._request(struct.pack("<BxHBBxx", _GET_KEYBOARD_MAPPING, 2,
                                           self._min_keycode, count), reply=True)
        per = answer[1]
        syms = struct.unpack(f"<{count * per}I", answer[32:32 + 4 * count * per])
        keymap: dict[int, int] = {}
        for index, sym in enumerate(syms):
            keymap.setdefault(sym, self._min_keycode + index // per)
        return keymap

    def _fake(self, kind: int, detail: int, x: int = 0, y: int = 0) -> None:
        self._request(struct.pack("<BBHBBxxII8xhh7xB", self._xtest, _XTEST_FAKE_INPUT, 9, kind,
                                  detail, 0, self.root if kind == _MOTION else 0, x, y, 0))

    def sync(self) -> None:
        """Wait until the server has handled every event sent so far."""
        self._request(struct.pack("<BxH", _GET_INPUT_FOCUS, 1), reply=True)

    # ------------------------------------------------------------- actions

    def move(self, x: int, y: int) -> None:
        """Put the pointer at screen position (x, y)."""
        self._fake(_MOTION, 0, x, y)
        self.sync()

    def focus_under_pointer(self) -> int:
        """Give the keyboard to the top-level window under the pointer (a window manager's
        job; without one, a new popup such as a search field never gets the keys)."""
        answer = self._request(struct.pack("<BxHI", _QUERY_POINTER, 2, self.root), reply=True)
        (child,) = struct.unpack("<I", answer[12:16])
        if child:
            self._request(struct.pack("<BBHII", _SET_INPUT_FOCUS, _POINTER_ROOT, 3, child, 0))
            self.sync()
        return child

    def click(self, button: int = 1) -> None:
        self._fake(_BUTTON_PRESS, button)
        self._fake(_BUTTON_RELEASE, button)
        self.sync()

    def keycode(self, name: str) -> int:
        sym = KEYSYMS[name]
        if sym not in self._keymap:
            raise KeyError(f"no key produces {name} on this display")
        return self._keymap[sym]

    def chord(self, *names: str, hold_s: float = 0.05) -> None:
        """Press the keys in order and release them in reverse (e.g. "Control_L", "z")."""
        codes = [self.keycode(name) for name in names]
        for code in codes:
            self._fake(_KEY_PRESS, code)
            self.sync()
            time.sleep(hold_s)
        for code in reversed(codes):
            self._fake(_KEY_RELEASE, code)
        self.sync()

    def type_text(self, text: str, pause_s: float = 0.03) -> None:
        """Type lowercase letters, spaces, "-" and "/" one key at a time."""
        for char in text:
            self.chord(char, hold_s=0.01)
            time.sleep(pause_s)

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> XInput:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
