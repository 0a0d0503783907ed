"""The hls4ml configuration that makes hls4ml's fixed-point network the stored one, and its check.

hls4ml's ONNX frontend reads Brevitas' integer codes, rounding and clamping faithfully, but folds
the float scales, biases and BatchNorm into per-layer constants whose precision it does not
derive: they fall into the default ``fixed<16,6>`` (a BatchNorm scale of 0.002 keeps 1-2
significant bits, an output scale below 2^-10 becomes 0), the input wraps beyond +-32 and ReLU
truncates before the activation quantizer rounds. This module writes every one of those formats
from :mod:`qapbo.cost.fixedpoint`, keyed by the layer names hls4ml 1.3.0 gives them, in the shape
``hls4ml.utils.config_from_onnx_model(..., granularity='name')`` produces. Which hls4ml layer
holds which constant (``Dense_<MatMul>``, ``BatchNormalization_<k>`` or ``bn_<Add>``,
``<Quant>_scale`` for a requantizer) is hls4ml's naming; :func:`check_hls4ml` compiles the result
and compares hls4ml's own C++ emulation with the stored model, so a change there cannot go unseen.
"""

from __future__ import annotations

import copy
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qapbo.errors import Hls4mlError

if TYPE_CHECKING:  # numpy and torch load with the check, not with the strategies the CLI offers
    import numpy as np

    from qapbo.cost.fixedpoint import FixedPointView
    from qapbo.nn.models import JetTagger

HLS4ML_VERSION = "1.3.0"  # the version whose layer names and folding this module follows
INSTALL = "pip install 'qapbo[hls4ml]'"
#: hls4ml's name of each strategy qapbo writes. ``da``: hls4ml's distributed-arithmetic strategy, which
#: writes every Dense as da4ml's shift-and-add logic, the arithmetic qapbo's ``luts`` cost counts (needs
#: da4ml, io_parallel, reuse factor 1); ``latency``: hls4ml's fully parallel multiplier design (DSPs).
STRATEGIES = {"da": "distributed_arithmetic", "latency": "Latency"}
DEFAULT_STRATEGY = "da"
DEFAULT_MODEL_CONFIG = {"Precision": {"default": "fixed<16,6>"}, "ReuseFactor": 1,
                        "Strategy": STRATEGIES[DEFAULT_STRATEGY], "BramFactor": 1000000000, "TraceOutput": False}


def hls_config(view: FixedPointView, graph: Any, strategy: str = DEFAULT_STRATEGY) -> dict[str, Any]:
    """``hls_config`` for ``hls4ml.converters.convert_from_onnx_model`` of ``graph`` (a qonnx
    ``ModelWrapper`` of the exported, cleaned graph with Gemm turned into MatMul + Add), with
    ``strategy`` (a key of :data:`STRATEGIES`). The formats do not depend on the strategy: both
    compute the same integer products, exactly."""
    if strategy not in STRATEGIES:
        raise Hls4mlError(f"unknown hls4ml strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    nodes = list(graph.graph.node)
    consumers: dict[str, list[Any]] = {}
    for n in nodes:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    net_in = graph.graph.input[0].name

    names: dict[str, Any] = {}
    for n in nodes:  # every ONNX node, as config_from_onnx_model lists them
        entry: dict[str, Any] = {"Trace": False, "Precision": {"result": "auto"}, "ReuseFactor": 1}
        if n.op_type == "MatMul":
            entry["Precision"]["accum"] = "auto"
        names[n.name] = entry

    def set_(layer: str, **precision: str) -> None:
        names.setdefault(layer, {"Trace": False, "Precision": {}, "ReuseFactor": 1})["Precision"] = dict(precision)

    set_(net_in, result=view.input_format.hls("RND_CONV,SAT"))
    x = net_in
    q_in = [n for n in consumers.get(net_in, []) if n.op_type == "Quant"]
    if (view.input_quantizer is not None) != bool(q_in):
        raise Hls4mlError("the exported graph and the network disagree about the input quantizer; please report this")
    if q_in:
        iq = view.input_quantizer
        set_(f"{q_in[0].name}_scale", scale=iq.inv_scale_format.hls("RND"), bias="fixed<2,1>",
             result=iq.code_format.hls("RND_CONV,SAT"))
        x = q_in[0].output[0]
    for k, layer in enumerate(view.layers):
        matmul = _only(consumers, x, "MatMul", k)
        set_(f"Dense_{matmul.name}", accum=layer.accumulator_format.hls(), result=layer.accumulator_format.hls())
        add = _only(consumers, matmul.output[0], "Add", k)
        nxt = [n for n in consumers.get(add.output[0], []) if n.op_type == "BatchNormalization"]
        affine = nxt[0].name if nxt else f"bn_{add.name}"
        out = nxt[0].output[0] if nxt else add.output[0]
        set_(affine, scale=layer.scale_format.hls("RND"), bias=layer.bias_format.hls("RND"),
             result=layer.result_format.hls())
        if layer.requantizer is None:
            continue
        relu = _only(consumers, out, "Relu", k)
        set_(relu.name, result=layer.relu_format.hls())
        quant = _only(consumers, relu.output[0], "Quant", k)
        set_(f"{quant.name}_scale", scale=layer.requantizer.inv_scale_format.hls("RND"), bias="fixed<2,1>",
             result=layer.requantizer.code_format.hls("RND_CONV,SAT"))
        x = quant.output[0]
    return {"Model": DEFAULT_MODEL_CONFIG | {"Strategy": STRATEGIES[strategy]}, "LayerName": names}


def _only(consumers: dict[str, list[Any]], tensor: str, op: str, k: int) -> Any:
    found = [n for n in consumers.get(tensor, []) if n.op_type == op]
    if len(found) != 1:
        raise Hls4mlError(f"layer {k + 1} of the exported graph has no single {op} where one is expected; "
                          "please report this")
    return found[0]


def prepare_graph(path: str | Path) -> Any:
    """The README's recipe: qonnx cleanup, Gemm to MatMul + Add, cleanup again (stable node names)."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.gemm_to_matmul import GemmToMatMul
    from qonnx.util.cleanup import cleanup_model

    with warnings.catch_warnings():  # it warns that it knows Gemm v9 only; our Gemm (v20, no transposes) converts
        warnings.simplefilter("ignore", UserWarning)
        return cleanup_model(cleanup_model(ModelWrapper(str(path))).transform(GemmToMatMul()))


@dataclass
class Hls4mlCheck:
    rows: int
    same_class: int
    max_abs_diff: float
    tolerance: float
    strategy: str = "Latency"  # as hls4ml names it
    #: hls4ml's own cost estimate of its distributed-arithmetic kernels (the sum of every Dense's
    #: ``da_kernel_cost``, da4ml's LUTs of the matrix product and bias alone); None for other strategies
    da_kernel_luts: float | None = None

    @property
    def ok(self) -> bool:
        return self.same_class == self.rows and self.max_abs_diff <= self.tolerance


def require_hls4ml(strategy: str = "latency") -> None:
    """Raise one line naming what to install when hls4ml, a C++ compiler or (for the ``da``
    strategy) da4ml is missing."""
    try:
        import hls4ml  # noqa: F401
    except ImportError:
        raise Hls4mlError(f"checking with hls4ml needs hls4ml {HLS4ML_VERSION} and its ONNX frontend: "
                          f"{INSTALL}") from None
    if strategy == "da":
        try:
            import da4ml  # noqa: F401
        except ImportError:
            raise Hls4mlError(f"hls4ml's distributed-arithmetic strategy needs da4ml: {INSTALL}, or export with "
                              "--strategy latency") from None
    if shutil.which("g++") is None:  # hls4ml's build script calls g++ by name
        raise Hls4mlError("hls4ml compiles its C++ emulation with g++, which is not on PATH: install it "
                          "(e.g. apt-get install g++)")


def hls4ml_predict(graph_path: str | Path, config: dict[str, Any] | None, x: np.ndarray,
                   output_dir: str | Path | None = None) -> tuple[np.ndarray, Any]:
    """Convert the graph with ``config`` (None: hls4ml's default ``config_from_onnx_model``),
    compile hls4ml's C++ emulation (io_parallel, Vitis) and predict ``x``; (logits, hls4ml's model).

    hls4ml's converter fills in the configuration it is given, so it gets a copy: the caller's
    dictionary (and whatever is written from it) stays what the user will load."""
    import numpy as np

    require_hls4ml()
    import contextlib
    import io

    import hls4ml

    graph = prepare_graph(graph_path)
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()), \
            warnings.catch_warnings():  # hls4ml prints a lot, and warns about the input quantizer's zero point;
        warnings.simplefilter("ignore", UserWarning)  # the comparison with the stored model is the judge
        if config is None:
            config = hls4ml.utils.config_from_onnx_model(graph, granularity="name", backend="Vitis")
        out = Path(output_dir) if output_dir is not None else Path(tmp) / "hls4ml_prj"
        hm = hls4ml.converters.convert_from_onnx_model(graph, hls_config=copy.deepcopy(config), output_dir=str(out),
                                                       io_type="io_parallel", backend="Vitis")
        hm.compile()
        got = np.asarray(hm.predict(np.ascontiguousarray(x, dtype=np.float64)), np.float64).reshape(len(x), -1)
        return got, hm


def check_hls4ml(graph_path: str | Path, config: dict[str, Any] | None, model: JetTagger, x: np.ndarray,
                 tolerance: float) -> Hls4mlCheck:
    """hls4ml's compiled emulation of the graph against the stored model, on rows ``x``."""
    import numpy as np
    import torch

    got, hm = hls4ml_predict(graph_path, config, x)
    with torch.no_grad():
        want = model.eval()(torch.from_numpy(np.asarray(x, np.float32))).double().numpy()
    strategy = (config or {}).get("Model", {}).get("Strategy", "Latency")  # config_from_onnx_model's is Latency
    kernels = [layer.attributes["da_kernel_cost"] for layer in hm.get_layers() if "da_kernel_cost" in layer.attributes]
    return Hls4mlCheck(len(x), int((got.argmax(1) == want.argmax(1)).sum()), float(np.abs(got - want).max()),
                       tolerance, strategy, float(sum(kernels)) if kernels else None)
