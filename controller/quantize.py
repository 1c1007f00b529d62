"""int8 weights for the exported graphs: the same graph with its large matmuls reading 8-bit weights.

At one character a frame is a handful of matrix-vector products over the decoder's experts (5.5 MB of float32
weights for the Bandai-Namco model): the time goes into reading the weights, not into arithmetic, so a CPU core
cannot go much below the float32 figure (``benchmarks.bench_inference`` prints the bandwidth it reaches). Weights
stored as 8-bit integers are a quarter of the bytes.

``int8_weights(model)`` replaces every ``Gemm`` (``transA=0``, ``alpha=beta=1``) and ``MatMul`` whose weight is a
constant of at least ``min_weights`` entries by ONNX Runtime's ``com.microsoft.MatMulNBits`` with ``bits=8``:
weights quantised symmetrically in blocks of ``BLOCK`` along the input dimension (one float32 scale per block,
zero point 128), and ``accuracy_level=4``, which quantises the activations to int8 per block too and multiplies in
integers (the fast kernel; with float32 activations ONNX Runtime's 8-bit kernel was 20x slower). Small matrices
(the gate, the policy of the shipped characters, the style embedding) stay float32: they cost little and the policy
and gate are the most sensitive to rounding. Measured on the shipped Bandai-Namco joystick controller (one thread,
2-core CPU, idle): policy + decoder at batch 1 0.103 -> 0.068 ms; the largest difference of a raw output frame
from the float32 graph 0.07 on random inputs (tests bound it on real poses; ``tests/test_quantize.py`` also
measures what a user sees: a policy steering through the int8 decoder keeps its heading error and foot sliding).

The weights are taken from the graph after ONNX Runtime's basic optimisations (constant folding: the exported
graphs flatten the experts' (in, E, out) weights at run time), so any graph of ``controller.export`` works. The
result runs on ONNX Runtime's CPU provider only.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

BITS = 8
BLOCK = 64  # quantisation block along the input dimension (block 32: 4 % slower at batch 1, 30 % smaller error)
ACCURACY_LEVEL = 4  # int8 activations and integer products: the fast CPU kernel
MIN_WEIGHTS = 16_384  # entries of a weight matrix below which it stays float32
DOMAIN = "com.microsoft"
MIN_ONNXRUNTIME = (1, 22)  # its first release with an x86 kernel for 8-bit MatMulNBits


def check_runtime() -> None:
    """ValueError when the installed ONNX Runtime has no 8-bit MatMulNBits kernel for the CPU."""
    import onnxruntime

    version = tuple(int(p) for p in onnxruntime.__version__.split(".")[:2] if p.isdigit())
    if version < MIN_ONNXRUNTIME:
        need = ".".join(map(str, MIN_ONNXRUNTIME))
        raise ValueError(f"precision='int8' needs onnxruntime >= {need} (installed: {onnxruntime.__version__}); "
                         f"`pip install -U 'onnxruntime>={need}'`, or use precision='fp32'")


def constant_folded(model):
    """``model`` (onnx.ModelProto) after ONNX Runtime's basic graph optimisations (constant folding)."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="mvae-int8-") as tmp:
        path = os.path.join(tmp, "folded.onnx")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = path
        options.log_severity_level = 3  # the folding drops initializers it no longer needs, each with a warning
        ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        return onnx.load(path)


def quantize_blocks(w: np.ndarray, bits: int = BITS, block: int = BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """(K, N) float weight -> (codes (N, K_blocks, block) uint8, scales (N, K_blocks) float32) in MatMulNBits'
    layout: symmetric per block of ``block`` inputs, zero point 2**(bits-1), K padded with zeros to whole blocks."""
    k, n = w.shape
    blocks = -(-k // block)
    padded = np.zeros((blocks * block, n), np.float32)
    padded[:k] = w
    per_block = padded.T.reshape(n, blocks, block)  # (N, K_blocks, block)
    levels = 2 ** (bits - 1) - 1
    amax = np.abs(per_block).max(axis=-1, keepdims=True)  # (N, K_blocks, 1)
    scales = np.where(amax > 0, amax / levels, 1.0).astype(np.float32)
    codes = np.clip(np.rint(per_block / scales), -levels - 1, levels) + 2 ** (bits - 1)
    return codes.astype(np.uint8), scales[..., 0]


def dequantize_blocks(codes: np.ndarray, scales: np.ndarray, k: int, bits: int = BITS) -> np.ndarray:
    """The (K, N) float32 weight that ``quantize_blocks``' output stands for."""
    n, blocks, block = codes.shape
    w = (codes.astype(np.float32) - 2 ** (bits - 1)) * scales[..., None]  # (N, K_blocks, block)
    return w.reshape(n, blocks * block).T[:k]


def _constant_weight(node, inits: dict) -> np.ndarray | None:
    """The (K, N) constant weight of a plain Gemm / MatMul node, else None."""
    from onnx import helper, numpy_helper

    if len(node.input) < 2 or node.input[1] not in inits:
        return None
    w = numpy_helper.to_array(inits[node.input[1]])
    if w.ndim != 2 or w.dtype != np.float32:
        return None
    if node.op_type == "MatMul":
        return w
    if node.op_type != "Gemm":
        return None
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0:
        return None
    w = w.T if attrs.get("transB", 0) else w  # (K, N)
    bias = node.input[2] if len(node.input) > 2 else ""
    if bias and (bias not in inits or list(inits[bias].dims) != [w.shape[1]]):
        return None  # MatMulNBits adds a constant (N,) bias only
    return w


def int8_weights(model, min_weights: int | None = None):
    """``model`` (onnx.ModelProto) with its constant-weight matmuls of at least ``min_weights`` entries (default
    ``MIN_WEIGHTS``) on 8-bit weights (module docstring) -> (new ModelProto, number of matmuls converted)."""
    from onnx import helper, numpy_helper

    min_weights = MIN_WEIGHTS if min_weights is None else int(min_weights)
    folded = constant_folded(model)
    inits = {i.name: i for i in folded.graph.initializer}
    nodes, converted = [], 0
    for node in folded.graph.node:
        w = _constant_weight(node, inits)
        if w is None or w.size < min_weights:
            nodes.append(node)
            continue
        k, n = w.shape
        codes, scales = quantize_blocks(w)
        name = node.input[1]
        folded.graph.initializer.extend([numpy_helper.from_array(codes, f"{name}_int8"),
                                         numpy_helper.from_array(scales, f"{name}_scales")])
        inputs = [node.input[0], f"{name}_int8", f"{name}_scales", "", ""]  # no zero points (128), no g_idx
        if node.op_type == "Gemm" and len(node.input) > 2 and node.input[2]:
            inputs.append(node.input[2])
        nodes.append(helper.make_node("MatMulNBits", inputs, list(node.output), name=f"{node.name}_int8",
                                      domain=DOMAIN, K=k, N=n, bits=BITS, block_size=BLOCK,
                                      accuracy_level=ACCURACY_LEVEL))
        converted += 1
    del folded.graph.node[:]
    folded.graph.node.extend(nodes)
    used = {x for node in nodes for x in node.input}
    kept = [i for i in folded.graph.initializer if i.name in used]
    del folded.graph.initializer[:]
    folded.graph.initializer.extend(kept)
    if not any(op.domain == DOMAIN for op in folded.opset_import):
        folded.opset_import.append(helper.make_opsetid(DOMAIN, 1))
    return folded, converted
