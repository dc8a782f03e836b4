"""Face check: does a painted face still read as a face? If not, protect it more.

Why: the split by scale keeps the face's luminance detail, which is enough for
most photos, but some faces (a dark profile in a black-and-white photo, say)
are lost to the painting's *colour*: strong hues laid over a grey face. Which
faces suffer can't be told from the photo alone, so the pass asks MediaPipe's
face mesh — the same 468-point model the quality benchmark reads, run on the
detector's box — whether the painted face is still a face, and when it is not,
steps up that face's protection (the painting's colour laid on the face's own
light and shade, more of the photo's light, less brush grain; the photo's own
colour only as the last, partial resort) until it is, only inside that face's
own share of the amount. A face the photo
itself does not hold (presence below ``PHOTO_MIN_PRESENCE``) is left alone.

Note for whoever reads the benchmark: "faces kept" uses the same mesh, so on
faces this check touches it is a guarantee by construction; landmark NME and
the style gain stay independent measures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = ["MIN_PRESENCE", "PHOTO_MIN_PRESENCE", "PROTECTION_STEPS", "PresenceFn", "Protection",
           "mesh_presence"]

#: a painted face whose mesh presence is below this is protected more (the
#: benchmark counts < 0.5 as lost; the margin covers the composite's small
#: differences from the portrait layer and the full-size crop)
MIN_PRESENCE = 0.75
#: the photo's own face must read at least this well for the check to apply
PHOTO_MIN_PRESENCE = 0.5


@dataclass(frozen=True)
class Protection:
    """One step of extra protection for a face the mesh no longer reads.

    likeness: floor of the likeness knob; palette_keep: share of the painting's
    colour keyed by luminance (``portrait_pass.palette_chroma``) instead of its
    raw chroma; chroma_keep: share of the photo's own colour; tone_keep: share of
    the photo's coarse light; stroke_keep: share of the painting's fine grain.
    """

    likeness: float
    palette_keep: float
    chroma_keep: float
    tone_keep: float
    stroke_keep: float
    #: share of the default ``portrait_pass.TONE_MATCH`` still applied
    tone_match: float = 1.0


#: tried in order after the defaults fail. The painting's palette, laid on the
#: face's own light and shade, comes first: a grey photo's face under a blue or
#: orange painting then stays painted (the photo's grey was the old first resort,
#: and left a photograph pasted into the painting). The photo's own colour is
#: only the last resort, and only half of it.
PROTECTION_STEPS: tuple[Protection, ...] = (
    Protection(likeness=0.8, palette_keep=1.0, chroma_keep=0.0, tone_keep=0.3,
               stroke_keep=0.2),
    Protection(likeness=1.0, palette_keep=1.0, chroma_keep=0.0, tone_keep=0.6,
               stroke_keep=0.0, tone_match=0.5),
    Protection(likeness=1.0, palette_keep=1.0, chroma_keep=0.5, tone_keep=0.8,
               stroke_keep=0.0, tone_match=0.0),
)

#: presence of a face in an image: (image [1,3,H,W], box (x0, y0, x1, y1), rotation) → 0..1
PresenceFn = Callable[[torch.Tensor, tuple[float, float, float, float], float], float]

def mesh_presence(device: torch.device) -> PresenceFn | None:
    """The face mesh's presence score on ``device`` (loaded once), or None if unavailable."""
    from .models.face import loaded_once

    mesh = loaded_once("landmarker", device)
    if mesh is None:
        return None

    def presence(image: torch.Tensor, box: tuple[float, float, float, float],
                 rotation: float) -> float:
        return mesh.landmarks_in_image(image.float(), box, rotation)[1]  # type: ignore[attr-defined]

    return presence
