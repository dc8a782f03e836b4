"""The host-agnostic plug-in core, the ORA writer and image loading (no daemon, no torch)."""

from __future__ import annotations

import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fake_document import FakeDocument
from PIL import Image

from portrait_style.plugin import core
from portrait_style.plugin.contract import run_contract
from portrait_style.plugin.core import (
    OptionError,
    PlanError,
    SourceLayer,
    StylizeOptions,
    parse_param,
    parse_params,
    plan_layers,
    readable_style_name,
)
from portrait_style.plugin.document import Document
from portrait_style.plugin.imageio import ImageReadError, load_image, load_mask, save_png
from portrait_style.plugin.ora import OraError, OraStack, read_ora
from portrait_style.plugin.outputs import compose_bands, write_outputs
from portrait_style.plugin.record import JobRecord, RecordError
from portrait_style.protocol.messages import Pixels

W, H = 40, 24


@dataclass
class Reply:
    """Stands in for protocol.client.StylizeReply (same two attributes)."""

    layers: dict[str, np.ndarray]
    info: dict[str, Any] = field(default_factory=dict)


def _source(alpha: bool) -> np.ndarray:
    rng = np.random.default_rng(0)
    px = rng.integers(0, 256, (H, W, 4 if alpha else 3), dtype=np.uint8)
    if alpha:
        px[..., 3] = np.linspace(0, 255, W, dtype=np.uint8)[None, :]
    return px


def _reply(channels: int, person: bool = True) -> Reply:
    """Distinct flat colours per layer; the mask is the left half."""
    bg = np.zeros((H, W, channels), np.uint8)
    bg[..., :3] = (200, 30, 30)
    pt = np.zeros((H, W, channels), np.uint8)
    pt[..., :3] = (30, 30, 200)
    if channels == 4:  # a sloppy daemon alpha the plan must replace by the source's
        bg[..., 3] = pt[..., 3] = 255
    mask = np.zeros((H, W), np.uint8)
    if person:
        mask[:, : W // 2] = 255
    return Reply({"background": bg, "portrait": pt, "mask": mask},
                 {"person_found": person, "engine": "noop"})


# --- --param parsing -------------------------------------------------------------------


def test_parse_param_reads_region_knob_value() -> None:
    assert parse_param("portrait.strength=0.4") == ("portrait", "strength", 0.4)
    assert parse_param(" Background.W_HIGH = 1.5 ") == ("background", "w_high", 1.5)
    assert parse_param("portrait.preserve_color=yes") == ("portrait", "preserve_color", True)
    assert parse_param("portrait.preserve_color=0") == ("portrait", "preserve_color", False)


@pytest.mark.parametrize("text, fragment", [
    ("portrait.strength", "REGION.KNOB=VALUE"),
    ("strength=0.4", "REGION.KNOB=VALUE"),
    ("face.strength=0.4", "unknown region 'face'"),
    ("portrait.sharpness=2", "unknown knob 'sharpness'"),
    ("portrait.strength=lots", "takes a number"),
    ("portrait.strength=1.5", "0..1"),
    ("portrait.strength=nan", "0..1"),
    ("background.w_low=-1", "w_low must be in 0.."),
    ("portrait.preserve_color=maybe", "true/false"),
])
def test_parse_param_rejects_with_a_reason(text: str, fragment: str) -> None:
    with pytest.raises(OptionError) as err:
        parse_param(text)
    assert fragment in str(err.value)


def test_parse_params_later_values_win_and_merge_regions() -> None:
    got = parse_params(["portrait.strength=0.2", "background.w_low=2",
                        "portrait.strength=0.3"])
    assert got == {"portrait": {"strength": 0.3}, "background": {"w_low": 2.0}}


def test_options_send_only_what_was_set_and_params_win() -> None:
    assert StylizeOptions().regions() == {}
    opts = StylizeOptions(background_strength=0.9, portrait_strength=0.5, preserve_color=True,
                          region_overrides={"portrait": {"strength": 0.25}})
    assert opts.regions() == {
        "background": {"strength": 0.9, "preserve_color": True},
        "portrait": {"strength": 0.25, "preserve_color": True},
    }
    with pytest.raises(OptionError, match="background strength: strength must be in 0..1"):
        StylizeOptions(background_strength=2.0).regions()


# --- request parameters ----------------------------------------------------------------


def test_params_always_bring_the_mask_with_the_portrait() -> None:
    params = StylizeOptions(portrait_strength=0.5).params()
    assert params.outputs == ("background", "portrait", "mask", "composite")
    assert params.regions == {"portrait": {"strength": 0.5}}
    assert StylizeOptions(outputs=("portrait",)).params().outputs == ("portrait", "mask")
    assert StylizeOptions(outputs=("background",)).params().outputs == ("background",)


@pytest.mark.parametrize("options, fragment", [
    (StylizeOptions(outputs=("sky",)), "unknown output 'sky'"),
    (StylizeOptions(max_working_pixels=100), "at least 65536"),
    (StylizeOptions(mask_feather=-1.0), "mask_feather"),
    (StylizeOptions(portrait_strength=3.0), "portrait strength"),
])
def test_params_refuse_in_one_wording(options: StylizeOptions, fragment: str) -> None:
    with pytest.raises(OptionError, match=fragment):
        options.params()


@pytest.mark.parametrize("path, name", [
    ("/x/starry_night.jpg", "Starry Night"),
    ("the-great-wave.png", "The Great Wave"),
    ("VanGogh_Irises.tif", "VanGogh Irises"),
    ("a.b.c.png", "A B C"),
])
def test_style_names_are_made_readable(path: str, name: str) -> None:
    assert readable_style_name(path) == name
    assert StylizeOptions(style_path=Path(path)).display_style_name() == name


# --- the layer plan ----------------------------------------------------------------------


def _source_layer(alpha: bool, offset: tuple[int, int] = (0, 0)) -> SourceLayer:
    return SourceLayer("photo", Pixels.from_array(_source(alpha)), offset, layer_id="L1")


@pytest.mark.parametrize("alpha", [True, False])
def test_plan_follows_the_layer_contract(alpha: bool) -> None:
    src = _source(alpha)
    plan = plan_layers(_reply(4 if alpha else 3), _source_layer(alpha, (7, 3)), "Starry Night")
    assert plan.group_name == "Portrait style — Starry Night"
    assert [p.name for p in plan.layers] == ["Portrait", "Background"]  # top first
    portrait, background = plan.layers
    assert portrait.mask is not None and portrait.mask.tobytes() == plan.mask.tobytes()
    assert background.mask is None
    assert plan.offset == (7, 3) and plan.size == (W, H)
    for layer in plan.layers:
        arr = layer.pixels.to_array()
        assert arr.shape == src.shape  # full frame, the source's channels
        if alpha:
            assert np.array_equal(arr[..., 3], src[..., 3])  # alpha kept exactly
    assert tuple(portrait.pixels.to_array()[0, 0, :3]) == (30, 30, 200)  # not cut
    assert tuple(background.pixels.to_array()[0, 0, :3]) == (200, 30, 30)


def test_plan_rejects_replies_that_do_not_fit() -> None:
    bad = _reply(3)
    bad.layers["background"] = np.zeros((H + 1, W, 3), np.uint8)
    with pytest.raises(PlanError, match="background at 40×25"):
        plan_layers(bad, _source_layer(False), "s")
    with pytest.raises(PlanError, match="none of the requested"):
        plan_layers(Reply({}), _source_layer(False), "s")


@pytest.mark.parametrize("alpha", [True, False])
def test_a_preview_plan_is_the_preview_size_with_the_daemons_alpha(alpha: bool) -> None:
    """A preview (JobParams.preview = 20 on a 40×24 layer) is 20×12, channels as the layer."""
    channels = 4 if alpha else 3
    small = np.full((12, 20, channels), 77, np.uint8)
    reply = Reply({"composite": small}, {"preview": [20, 12]})
    plan = plan_layers(reply, _source_layer(alpha), "s", preview=20)
    assert plan.size == (20, 12) and plan.composite is not None
    assert plan.composite.to_array().tobytes() == small.tobytes()  # taken as it came
    full = Reply({"composite": _reply(channels).layers["background"]})
    with pytest.raises(PlanError, match="composite at 40×24, the preview is 20×12"):
        plan_layers(full, _source_layer(alpha), "s", preview=20)
    wrong = Reply({"composite": np.zeros((12, 20, 7 - channels), np.uint8)})
    with pytest.raises(PlanError, match=f"the layer has {channels}"):
        plan_layers(wrong, _source_layer(alpha), "s", preview=20)


def test_a_preview_is_never_applied_to_the_document() -> None:
    from portrait_style.plugin.job import Job, JobState, apply
    from portrait_style.protocol.request import JobParams

    doc = FakeDocument(Pixels.from_array(_source(False)))
    source = _source_layer(False)
    reply = Reply({"composite": np.zeros((12, 20, 3), np.uint8)})
    record = JobRecord(style_path="", style_sha256="", style_name="s", params={})
    job = Job(source=source, style=source.pixels, record=record, state=JobState.DONE,
              params=JobParams(outputs=("composite",), preview=32).check(),
              plan=plan_layers(reply, source, "s", preview=20, record=record))
    with pytest.raises(RuntimeError, match="a preview is shown, not applied"):
        apply(doc, job)
    assert doc.stack == [doc.source] and doc.undo_steps == 0


def test_notice_when_no_person_found() -> None:
    assert core.notices({"person_found": True}) == []
    assert "no person" in core.notices({"person_found": False})[0]


# --- documents, records, the contract -----------------------------------------------------


@pytest.mark.parametrize("alpha, offset", [(True, (5, 9)), (False, (0, 0))])
def test_the_fake_document_keeps_the_contract(alpha: bool, offset: tuple[int, int]) -> None:
    doc = FakeDocument(Pixels.from_array(_source(alpha)), offset)
    assert isinstance(doc, Document)
    assert run_contract(doc, doc.source) == []


def test_the_contract_catches_a_document_that_cuts_the_portrait() -> None:
    class Cutting(FakeDocument):
        def add_result_group(self, plan, above):  # noqa: ANN001, ANN201 - the interface's
            group = super().add_result_group(plan, above)
            portrait = group.children[0]
            arr = portrait.pixels.to_array().copy()
            arr[portrait.mask.to_array() == 0] = 0
            portrait.pixels = Pixels.from_array(arr)
            return group

    doc = Cutting(Pixels.from_array(_source(True)))
    failures = run_contract(doc, doc.source)
    assert any("not cut" in f for f in failures), failures


def test_job_records_round_trip_and_refuse_garbage() -> None:
    record = JobRecord(style_path="/s/wave.png", style_sha256="a" * 64, style_name="Wave",
                       params=StylizeOptions(portrait_strength=0.4).params().as_dict(),
                       source_id="L1", source_name="photo")
    back = JobRecord.from_json(record.to_json())
    assert back == record
    assert back.job_params().regions == {"portrait": {"strength": 0.4}}
    for text in (None, "", "{not json", '{"format": 99}', '{"format": 1}'):
        with pytest.raises(RecordError):
            JobRecord.from_json(text)


def test_core_imports_neither_torch_nor_the_daemon() -> None:
    code = ("import sys; import portrait_style.plugin.core, portrait_style.plugin.ora, "
            "portrait_style.plugin.progress, portrait_style.plugin.cli_host; "
            "bad = [m for m in sys.modules if m == 'torch' or m.startswith('torch.') "
            "or m.startswith('portrait_style.daemon')]; print(bad); sys.exit(1 if bad else 0)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr


# --- OpenRaster ------------------------------------------------------------------------


def _ora(tmp_path: Path, alpha: bool) -> tuple[Path, np.ndarray, dict[str, np.ndarray]]:
    """layers.ora as the command-line host writes it, from a reply's layers."""
    src = _source(alpha)
    layers = dict(_reply(4 if alpha else 3).layers)
    if alpha:
        for name in ("background", "portrait"):
            layers[name] = np.concatenate([layers[name][..., :3], src[..., 3:]], axis=2)
    write_outputs(tmp_path, layers, source_name="photo", source=src,
                  group_name="Portrait style — Starry Night")
    return tmp_path / "layers.ora", src, layers


def test_ora_container_rules(tmp_path: Path) -> None:
    path, _, _ = _ora(tmp_path, alpha=True)
    with zipfile.ZipFile(path) as zf:
        first = zf.infolist()[0]
        assert first.filename == "mimetype"
        assert first.compress_type == zipfile.ZIP_STORED
        assert zf.read("mimetype") == b"image/openraster"
        # stored uncompressed right after the 30-byte local header + name: readable at 38
        raw = path.read_bytes()
        assert raw[30:38] == b"mimetype" and raw[38:38 + 16] == b"image/openraster"
        names = zf.namelist()
        assert {"stack.xml", "mergedimage.png", "Thumbnails/thumbnail.png"} <= set(names)
        image = ET.fromstring(zf.read("stack.xml"))  # valid XML
        assert image.tag == "image" and (image.get("w"), image.get("h")) == (str(W), str(H))
        for elem in image.iter("layer"):
            assert elem.get("src") in names and elem.get("src").startswith("data/")
    doc = read_ora(path)
    assert doc.mimetype_first and doc.mimetype_stored
    assert doc.version == "0.0.5"
    assert doc.merged.shape == (H, W, 4)
    assert max(doc.thumbnail.shape[:2]) <= 256
    assert doc.thumbnail.shape[:2] == (H, W)  # small images are not upscaled


def test_ora_holds_the_group_above_the_source(tmp_path: Path) -> None:
    path, source, layers = _ora(tmp_path, alpha=True)
    doc = read_ora(path)
    mask = layers["mask"]
    group, bottom = doc.root.children
    assert isinstance(group, OraStack) and group.name == "Portrait style — Starry Night"
    assert bottom.name == "photo" and np.array_equal(bottom.pixels, source)
    assert [c.name for c in group.children] == ["Person mask", "Portrait", "Background"]
    mask_layer, portrait, background = group.children
    assert not mask_layer.visible and portrait.visible and background.visible
    for layer in group.children:
        assert layer.pixels.shape == (H, W, 4) and (layer.x, layer.y) == (0, 0)
    # mask travels as grey, opaque
    assert np.array_equal(mask_layer.pixels[..., 0], mask)
    assert (mask_layer.pixels[..., 3] == 255).all()
    # portrait cut by the mask: alpha = mask × source alpha
    want = (mask.astype(np.uint32) * source[..., 3] + 127) // 255
    assert np.array_equal(portrait.pixels[..., 3], want.astype(np.uint8))
    assert np.array_equal(background.pixels[..., 3], source[..., 3])
    # merged image = portrait where the mask is, background elsewhere (both over the source)
    opaque = source[..., 3] == 255
    left, right = opaque[:, : W // 2], opaque[:, W // 2:]
    assert (doc.merged[:, : W // 2][left][:, :3] == (30, 30, 200)).all()
    assert (doc.merged[:, W // 2:][right][:, :3] == (200, 30, 30)).all()


def test_ora_rgb_source_layers_are_opaque(tmp_path: Path) -> None:
    path, _, layers = _ora(tmp_path, alpha=False)
    doc = read_ora(path)
    assert (doc.find("Background").pixels[..., 3] == 255).all()
    assert (doc.merged[..., 3] == 255).all()
    assert np.array_equal(doc.merged[..., :3], compose_bands(
        layers["background"], layers["portrait"], layers["mask"])[..., :3])


def _rezip(src: Path, dst: Path, order: list[str], deflate_mimetype: bool) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in order:
            kind = (zipfile.ZIP_DEFLATED if name != "mimetype" or deflate_mimetype
                    else zipfile.ZIP_STORED)
            zout.writestr(name, zin.read(name), compress_type=kind)


@pytest.mark.parametrize("mimetype_last, deflate, fragment", [
    (True, False, "first member is 'stack.xml'"),
    (False, True, "compressed"),
])
def test_ora_reader_enforces_the_mimetype_rule(tmp_path: Path, mimetype_last: bool,
                                               deflate: bool, fragment: str) -> None:
    good, _, _ = _ora(tmp_path, alpha=False)
    names = zipfile.ZipFile(good).namelist()
    order = names[1:] + names[:1] if mimetype_last else names
    bad = tmp_path / "bad.ora"
    _rezip(good, bad, order, deflate)
    with pytest.raises(OraError, match=fragment):
        read_ora(bad)
    lenient = read_ora(bad, strict=False)
    assert not (lenient.mimetype_first and lenient.mimetype_stored)
    assert lenient.find("Portrait").pixels.shape == (H, W, 4)


# --- image files ------------------------------------------------------------------------


def test_load_image_modes_and_exif_orientation(tmp_path: Path) -> None:
    rgb = np.zeros((10, 20, 3), np.uint8)
    rgb[:, :10] = 255  # white left half
    img = Image.fromarray(rgb)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° CW to display"
    img.save(tmp_path / "rot.jpg", exif=exif.tobytes(), quality=95)
    out = load_image(tmp_path / "rot.jpg")
    assert out.shape == (20, 10, 3) and out.dtype == np.uint8
    assert out[:10].mean() > 200 and out[10:].mean() < 50  # white half is now on top
    Image.fromarray(np.full((5, 6), 77, np.uint8)).save(tmp_path / "g.png")
    assert load_image(tmp_path / "g.png").shape == (5, 6, 3)
    Image.fromarray(np.full((5, 6, 2), 77, np.uint8), "LA").save(tmp_path / "la.png")
    assert load_image(tmp_path / "la.png").shape == (5, 6, 4)
    Image.fromarray(np.full((5, 6), 65535, np.uint16)).save(tmp_path / "16.png")
    assert load_image(tmp_path / "16.png").max() == 255


@pytest.mark.parametrize("make, fragment", [
    (lambda p: None, "no such file"),
    (lambda p: p.mkdir(), "is a directory"),
    (lambda p: p.write_bytes(b"this is not an image"), "not an image format"),
    (lambda p: p.write_bytes(_png_bytes()[:80]), "corrupt or unreadable"),
])
def test_unreadable_images_raise_a_clear_error_naming_the_file(tmp_path: Path, make: Any,
                                                               fragment: str) -> None:
    path = tmp_path / "photo.png"
    make(path)
    with pytest.raises(ImageReadError) as err:
        load_image(path)
    assert str(path) in str(err.value) and fragment in str(err.value)


def _png_bytes() -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), np.uint8)).save(
        buf, "PNG")
    return buf.getvalue()


def test_load_mask_size_and_modes(tmp_path: Path) -> None:
    m = np.zeros((6, 8), np.uint8)
    m[:, :4] = 255
    save_png(tmp_path / "m.png", m)
    assert np.array_equal(load_mask(tmp_path / "m.png", (8, 6)), m)
    Image.fromarray(np.stack([m] * 3, axis=2)).save(tmp_path / "rgb.png")
    assert np.array_equal(load_mask(tmp_path / "rgb.png"), m)
    with pytest.raises(ImageReadError, match="8×6 but the content is 9×6"):
        load_mask(tmp_path / "m.png", (9, 6))


def test_save_png_writes_l_rgb_rgba(tmp_path: Path) -> None:
    for shape, mode in (((4, 5), "L"), ((4, 5, 3), "RGB"), ((4, 5, 4), "RGBA")):
        path = save_png(tmp_path / f"{mode}.png", np.full(shape, 9, np.uint8))
        with Image.open(path) as img:
            assert img.mode == mode and img.size == (5, 4)
    assert not list(tmp_path.glob(".*.tmp"))  # temporary files renamed into place


# --- progress display -----------------------------------------------------------------


def test_progress_plain_lines_when_not_a_tty() -> None:
    import io

    from portrait_style.plugin.progress import ProgressBar

    out = io.StringIO()
    bar = ProgressBar(out, tty=False)
    for stage, frac in [("queued", 0.0), ("segment", 0.05), ("stylize", 0.2),
                        ("stylize", 0.22), ("stylize", 0.35), ("compose", 1.0)]:
        bar(stage, frac)
    bar.close()
    lines = out.getvalue().splitlines()
    # a line per stage and per new 10 % step, never a carriage return
    assert lines == ["portrait-style:   0% queued", "portrait-style:   5% segment",
                     "portrait-style:  20% stylize", "portrait-style:  35% stylize",
                     "portrait-style: 100% compose"]
    assert "\r" not in out.getvalue()


def test_progress_bar_redraws_in_place_on_a_tty() -> None:
    import io

    from portrait_style.plugin.progress import ProgressBar

    out = io.StringIO()
    with ProgressBar(out, tty=True, min_interval_s=0.0) as bar:
        bar("starting daemon: loading models…", -1.0)
        bar("stylize", 0.5)
        bar.message("a notice")
        bar("compose", 1.0)
    text = out.getvalue()
    assert text.count("\r") >= 3 and text.endswith("\n")
    assert "[##############..............]  50% stylize" in text
    assert "a notice\n" in text and "100% compose" in text


def test_progress_message_from_a_signal_handler_does_not_deadlock() -> None:
    """Ctrl-C's handler prints via ``message`` while the same thread may be mid-draw."""
    import io

    from portrait_style.plugin.progress import ProgressBar

    fired: list[bool] = []

    class Interrupting(io.StringIO):
        def write(self, text: str) -> int:
            if not fired:  # what a SIGINT arriving during a draw amounts to
                fired.append(True)
                bar.message("cancelling…")
            return super().write(text)

    stream = Interrupting()
    bar = ProgressBar(stream, tty=True, min_interval_s=0.0)
    worker = threading.Thread(target=bar, args=("stylize", 0.5), daemon=True)
    worker.start()
    worker.join(timeout=5)
    assert not worker.is_alive() and "cancelling…" in stream.getvalue()


# --- the artist's sentences --------------------------------------------------------------


def test_every_error_code_and_client_failure_has_a_sentence() -> None:
    from portrait_style.plugin.explain import CODE_SENTENCES, explain
    from portrait_style.plugin.launcher import DaemonStartError
    from portrait_style.protocol import errors

    assert set(errors.ERROR_CODES) <= set(CODE_SENTENCES)
    cases = [
        (errors.DaemonGone("x"), "stopped while working"),
        (errors.DaemonTimeout("x"), "stopped answering"),
        (errors.DaemonUnreachable("nobody home"), "Could not reach"),
        (DaemonStartError("boom"), "could not start"),
        (errors.MessageTooLarge("9 MP"), "larger than the daemon accepts"),
        (errors.DaemonError(errors.BUSY, "queue full"), "busy"),
        (errors.Cancelled(errors.CANCELLED, "x"), "Cancelled"),
        (OptionError("choose a style painting first"), "choose a style"),
        (PlanError("mask of 3×3"), "did not fit"),
        (RecordError("no record"), "no record"),
        (FileNotFoundError(2, "No such file", "/a/b.png"), "/a/b.png"),
        (ZeroDivisionError("x"), "bug"),
    ]
    for exc, fragment in cases:
        sentence = explain(exc, "ipc:///run/user/1/portrait-style/daemon.sock")
        assert fragment in sentence, (exc, sentence)
        assert "Traceback" not in sentence and len(sentence) < 500


def test_likeness_and_stroke_size_reach_the_regions_they_belong_to() -> None:
    params = StylizeOptions(likeness=0.6, stroke_size=2.0).params()
    assert params.regions == {"portrait": {"likeness": 0.6, "stroke_size": 2.0},
                              "background": {"stroke_size": 2.0}}
    with pytest.raises(OptionError, match="stroke size"):
        StylizeOptions(stroke_size=0.1).params()
