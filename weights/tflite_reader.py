"""Read MediaPipe ``.tflite`` files as data and turn their weights into torch state dicts.

Why a reader and not an interpreter: the product runs hand-written PyTorch
modules (GPU, half precision, batching) and only needs the *numbers* inside the
flatbuffer. Parsing is done by the ``tflite`` package (the generated flatbuffer
bindings); this module adds the few conveniences the converters need:

* operators with their op name (builtin, or the custom code such as MediaPipe's
  ``Convolution2DTransposeBias``), input/output tensor indices and options;
* constant tensors as numpy, following ``DEQUANTIZE`` so that float16 weights
  come back as float32 (MediaPipe ships its models with float16 weights);
* per layer (named after the Keras layer the model was exported from) the
  kernel/bias/alpha in torch layout.

The converters at the bottom are pure functions ``path -> state dict``; they
map weights onto modules whose layers carry a ``tflite_name`` attribute and
report what could not be mapped, by name, instead of silently skipping it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "TfliteModel",
    "TfliteOperator",
    "TfliteTensor",
    "UnmappedWeights",
    "convert_face_detector",
    "convert_face_landmarker",
    "convert_selfie",
    "convert_selfie_landscape",
    "layer_weights",
    "state_dict_for",
]

#: numpy dtype for each tflite ``TensorType`` value we can meet in these models
_NUMPY_DTYPES = {
    0: np.float32,
    1: np.float16,
    2: np.int32,
    3: np.uint8,
    4: np.int64,
    6: np.bool_,
    7: np.int16,
    9: np.int8,
    10: np.float64,
}


def _enum_names(enum_cls: type) -> dict[int, str]:
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_")}


@dataclass(frozen=True)
class TfliteTensor:
    """One tensor of the graph: a weight (``has_data``) or an activation."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    buffer: int
    has_data: bool


@dataclass(frozen=True)
class TfliteOperator:
    """One node: ``op`` is the builtin name (``CONV_2D``) or the custom code."""

    index: int
    op: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)
    custom_options: bytes = b""


class TfliteModel:
    """The first subgraph of a ``.tflite`` file, parsed once into plain Python objects."""

    def __init__(self, data: bytes) -> None:
        import tflite  # parsing dependency only; imported here so torch-only users skip it

        self._data = data
        model = tflite.Model.GetRootAsModel(data, 0)
        if model.SubgraphsLength() < 1:
            raise ValueError("tflite model has no subgraph")
        graph = model.Subgraphs(0)
        op_names = _enum_names(tflite.BuiltinOperator)
        self._buffers = [model.Buffers(i) for i in range(model.BuffersLength())]

        self.tensors: list[TfliteTensor] = []
        for i in range(graph.TensorsLength()):
            t = graph.Tensors(i)
            buf = self._buffers[t.Buffer()] if t.Buffer() < len(self._buffers) else None
            has_data = buf is not None and (buf.DataLength() > 0 or buf.Offset() > 1)
            self.tensors.append(
                TfliteTensor(
                    index=i,
                    name=t.Name().decode(),
                    shape=tuple(int(s) for s in t.ShapeAsNumpy()) if t.ShapeLength() else (),
                    dtype=np.dtype(_NUMPY_DTYPES.get(t.Type(), np.uint8)),
                    buffer=t.Buffer(),
                    has_data=has_data,
                )
            )

        self.operators: list[TfliteOperator] = []
        for i in range(graph.OperatorsLength()):
            o = graph.Operators(i)
            code = model.OperatorCodes(o.OpcodeIndex())
            # Files written by newer converters keep small codes in the deprecated field.
            builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            name = op_names.get(builtin, str(builtin))
            if name == "CUSTOM":
                name = code.CustomCode().decode()
            custom = o.CustomOptionsAsNumpy().tobytes() if o.CustomOptionsLength() else b""
            self.operators.append(
                TfliteOperator(
                    index=i,
                    op=name,
                    inputs=tuple(int(j) for j in o.InputsAsNumpy()) if o.InputsLength() else (),
                    outputs=tuple(int(j) for j in o.OutputsAsNumpy()),
                    options=_read_options(o),
                    custom_options=custom,
                )
            )
        self.inputs = tuple(int(j) for j in graph.InputsAsNumpy())
        self.outputs = tuple(int(j) for j in graph.OutputsAsNumpy())
        self._producer = {out: op for op in self.operators for out in op.outputs}

    @classmethod
    def from_file(cls, path: str | Path) -> TfliteModel:
        return cls(Path(path).read_bytes())

    # -- graph queries -------------------------------------------------------------
    def ops(self, *names: str) -> Iterator[TfliteOperator]:
        """Operators in file order, optionally only those whose op name is in ``names``."""
        return (o for o in self.operators if not names or o.op in names)

    def producer(self, tensor: int) -> TfliteOperator | None:
        return self._producer.get(tensor)

    # -- constants -----------------------------------------------------------------
    def raw(self, tensor: int) -> np.ndarray:
        """The stored bytes of a constant tensor, as its own dtype and shape."""
        t = self.tensors[tensor]
        buf = self._buffers[t.buffer]
        if buf.DataLength() > 0:
            data = buf.DataAsNumpy().tobytes()
        elif buf.Offset() > 1:  # large models keep buffers after the flatbuffer
            data = self._data[buf.Offset() : buf.Offset() + buf.Size()]
        else:
            raise KeyError(f"tensor {t.name!r} has no constant data")
        return np.frombuffer(data, dtype=t.dtype).reshape(t.shape).copy()

    def constant(self, tensor: int) -> np.ndarray:
        """A constant tensor's value; float16 weights behind ``DEQUANTIZE`` come back float32.

        Only float16 → float32 dequantization is followed: int8 models would need
        scale/zero-point handling, which none of the files we ship use, so they
        raise instead of returning wrong numbers.
        """
        t = self.tensors[tensor]
        if t.has_data:
            return self.raw(tensor)
        op = self.producer(tensor)
        if op is not None and op.op == "DEQUANTIZE":
            source = self.tensors[op.inputs[0]]
            if source.dtype != np.float16:
                raise NotImplementedError(
                    f"DEQUANTIZE of {source.dtype} ({source.name!r}) is not supported")
            return self.raw(source.index).astype(np.float32)
        raise KeyError(f"tensor {t.name!r} is computed at run time, not a constant")

    def is_constant(self, tensor: int) -> bool:
        op = self.producer(tensor)
        return self.tensors[tensor].has_data or (op is not None and op.op == "DEQUANTIZE")


def _read_options(op: Any) -> dict[str, Any]:
    """A builtin op's options table as a dict of its scalar fields (``Padding``, ``StrideW``…).

    The generated option classes expose each field as a zero-argument method;
    reading them reflectively keeps this reader free of a per-op table.
    """
    import tflite

    kind = op.BuiltinOptionsType()
    if kind == 0:
        return {}
    cls_name = _enum_names(tflite.BuiltinOptions).get(kind)
    cls = getattr(tflite, cls_name, None) if cls_name else None
    table = op.BuiltinOptions()
    if cls is None or table is None:
        return {}
    options = cls()
    options.Init(table.Bytes, table.Pos)
    values: dict[str, Any] = {}
    for attr in dir(cls):
        if not attr[:1].isupper() or attr.startswith(("GetRootAs", "Init")):
            continue
        if attr.endswith(("AsNumpy", "Length", "IsNone", "BufferHasIdentifier")):
            continue
        try:
            values[attr] = getattr(options, attr)()
        except TypeError:  # vector accessors take an index; not needed here
            continue
    return values


# -- layer weights ---------------------------------------------------------------------
_WEIGHT_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "Convolution2DTransposeBias", "PRELU")


def _layer_name(tensor_name: str) -> str:
    """``conv2d_3/Kernel_dequantize`` → ``conv2d_3``: the Keras layer a weight belongs to."""
    return re.split(r"/", tensor_name, maxsplit=1)[0]


def layer_weights(model: TfliteModel) -> dict[str, dict[str, np.ndarray]]:
    """Every weighted layer's parameters in torch layout, keyed by Keras layer name.

    Layouts: CONV_2D kernels are OHWI → OIHW; DEPTHWISE_CONV_2D kernels are
    1HWC → C1HW; MediaPipe's transposed conv stores OHWI, which torch's
    ``ConvTranspose2d`` wants as IOHW; PRELU alphas [1,1,C] → [C].
    """
    layers: dict[str, dict[str, np.ndarray]] = {}
    for op in model.ops(*_WEIGHT_OPS):
        weight_inputs = [i for i in op.inputs[1:] if i >= 0 and model.is_constant(i)]
        if not weight_inputs:
            continue
        name = _layer_name(model.tensors[weight_inputs[0]].name)
        if op.op == "PRELU":
            layers[name] = {"weight": model.constant(op.inputs[1]).reshape(-1)}
            continue
        kernel = model.constant(op.inputs[1])
        if op.op == "CONV_2D":
            kernel = kernel.transpose(0, 3, 1, 2)
        elif op.op == "DEPTHWISE_CONV_2D":
            kernel = kernel.transpose(3, 0, 1, 2)
        else:  # Convolution2DTransposeBias
            kernel = kernel.transpose(3, 0, 1, 2)
        params = {"weight": np.ascontiguousarray(kernel)}
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            params["bias"] = model.constant(op.inputs[2])
        layers[name] = params
    return layers


class UnmappedWeights(ValueError):
    """The file and the module disagree: lists the names on either side that found no partner."""


def state_dict_for(
    model: TfliteModel, module: nn.Module, *, strict: bool = True
) -> dict[str, torch.Tensor]:
    """Map a file's layers onto ``module``'s submodules that carry ``tflite_name``.

    Shapes are checked per tensor. With ``strict`` (the default) any layer of
    the file not used by the module, or any module layer missing from the file,
    raises :class:`UnmappedWeights` naming them.
    """
    layers = layer_weights(model)
    own = module.state_dict()
    state: dict[str, torch.Tensor] = {}
    missing: list[str] = []
    mismatched: list[str] = []
    used: set[str] = set()
    for prefix, sub in module.named_modules():
        name = getattr(sub, "tflite_name", None)
        if name is None:
            continue
        if name not in layers:
            missing.append(f"{prefix} (wants {name!r})")
            continue
        used.add(name)
        for param, value in layers[name].items():
            key = f"{prefix}.{param}"
            if key not in own:
                mismatched.append(f"{key}: module has no such parameter")
                continue
            if tuple(own[key].shape) != value.shape:
                mismatched.append(f"{key}: file {value.shape} vs module {tuple(own[key].shape)}")
                continue
            state[key] = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
    unused = sorted(set(layers) - used)
    not_filled = sorted(set(own) - set(state))
    if strict and (missing or mismatched or unused or not_filled):
        parts = []
        if missing:
            parts.append("module layers absent from the file: " + ", ".join(missing))
        if mismatched:
            parts.append("shape/parameter mismatches: " + "; ".join(mismatched))
        if unused:
            parts.append("file layers not used by the module: " + ", ".join(unused))
        if not_filled:
            parts.append("module parameters left unset: " + ", ".join(not_filled))
        raise UnmappedWeights(" | ".join(parts))
    return state


# -- per-model converters (pure: file in, state dict out) --------------------------------
def convert_selfie(path: Path) -> dict[str, torch.Tensor]:
    """``selfie_segmentation.tflite`` (256×256) → :class:`SelfieSegmentationNet` state dict."""
    from ..daemon.models.selfie import SelfieSegmentationNet

    return state_dict_for(TfliteModel.from_file(path), SelfieSegmentationNet("general"))


def convert_selfie_landscape(path: Path) -> dict[str, torch.Tensor]:
    """``selfie_segmentation_landscape.tflite`` (144×256) → state dict."""
    from ..daemon.models.selfie import SelfieSegmentationNet

    return state_dict_for(TfliteModel.from_file(path), SelfieSegmentationNet("landscape"))


def convert_face_detector(path: Path) -> dict[str, torch.Tensor]:
    """``face_detection_short_range.tflite`` → :class:`BlazeFaceNet` state dict."""
    from ..daemon.models.face import BlazeFaceNet

    return state_dict_for(TfliteModel.from_file(path), BlazeFaceNet())


def convert_face_landmarker(path: Path) -> dict[str, torch.Tensor]:
    """``face_landmark.tflite`` → :class:`FaceMeshNet` state dict."""
    from ..daemon.models.face import FaceMeshNet

    return state_dict_for(TfliteModel.from_file(path), FaceMeshNet())
