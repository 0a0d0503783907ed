"""The name and versioned definition of every cost qapbo measures.

No numpy, no torch: the command line and the readers of stored trials use these names without
loading a network. A stored result names the definition it was measured with, so a later change
of a definition is a new version, never a silent change of old numbers.
"""

from __future__ import annotations

#: Name and version of the BOPs definition (:mod:`qapbo.cost.bops`).
BOPS_DEFINITION = "hawks2021-v1"
#: BOPs of a network with a width per weight and per input (HGQ2's, qapbo's learned precision):
#: Hawks' formula with sums replacing its products (:mod:`qapbo.cost.perweight`); equal to
#: ``hawks2021-v1`` when every width of a layer is the same.
PERWEIGHT_BOPS_DEFINITION = "hawks2021-perweight-v1"
#: Name and version of the rule that counts a trial's training FLOPs (:mod:`qapbo.cost.flops`): a measure of
#: compute, not a hardware cost of the trained network, so it is no objective and not in DEFINITIONS.
FLOPS_DEFINITION = "qapbo-train-flops-v1"
#: Every cost qapbo can measure and use as an objective, with its definition's name and version.
DEFINITIONS: dict[str, str] = {
    "bops": BOPS_DEFINITION,
    "ebops": "hgq2-ebops-v1",
    "luts": "da4ml-0.6-adders-v1",
    "latency": "da4ml-0.6-depth-v1",
}
COSTS = tuple(DEFINITIONS)
#: da4ml's solver options behind ``luts`` and ``latency``: one decomposition depth instead of a search over
#: all (5x faster on 16-64-32-32-5, within ~2 % of the searched cost), so a trial's cost adds seconds at most.
SOLVER_OPTIONS = {"search_all_decompose_dc": False}
#: Costs that need the optional extra ``qapbo[hw]`` (da4ml).
HW_COSTS = ("luts", "latency")
LABELS = {"bops": "BOPs", "ebops": "EBOPs", "luts": "LUTs (da4ml)", "latency": "latency (adder levels)"}
HW_EXTRA = "pip install 'qapbo[hw]'"
