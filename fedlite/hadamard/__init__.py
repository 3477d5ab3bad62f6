"""FedPara / pFedPara: low-rank Hadamard-product layers, the rank rule, conversion and key split.

Implementation based on Hyeon-Woo, Ye-Bin and Oh, "FedPara: Low-Rank Hadamard Product
for Communication-Efficient Federated Learning", ICLR 2022, https://arxiv.org/abs/2108.06098,
and patent application KR 10-2023-0065883.
"""

from fedlite.lazy import exports

_WHERE = {
    # ``convert`` itself is ``fedlite.hadamard.convert.convert``: the package attribute of that
    # name is the submodule once it is imported
    "convert": ["LAYERS", "ConversionReport", "LayerReport", "default_exclude"],
    "keys": ["FACTOR_PREFIX", "LOCAL_PREFIX", "is_factor_key", "is_local_key", "split_state"],
    "layers": ["FactorizedConv2d", "FactorizedLayer", "FactorizedLinear", "HadamardConv2d",
               "HadamardLinear", "LowRankConv2d", "LowRankLinear", "PersonalHadamardConv2d",
               "PersonalHadamardLinear"],
    "ranks": ["MIN_RANK", "factorized_params", "lowrank_rank", "rank_bounds", "rank_for_gamma"],
}
__all__ = sorted(name for names in _WHERE.values() for name in names)
__getattr__, __dir__ = exports(__name__, {n: m for m, names in _WHERE.items() for n in names})
