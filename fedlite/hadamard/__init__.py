"""FedPara / pFedPara: low-rank Hadamard-product layers, the rank rule, conversion and key split.

Implementation based on Hyeon-Woo, Ye-Bin and Oh, "FedPara: Low-Rank Hadamard Product
for Communication-Efficient Federated Learning", ICLR 2022, https://arxiv.org/abs/2108.06098,
and patent application KR 10-2023-0065883.
"""

from fedlite.hadamard.convert import (LAYERS, ConversionReport, LayerReport, convert,
                                      default_exclude)
from fedlite.hadamard.keys import (FACTOR_PREFIX, LOCAL_PREFIX, is_factor_key, is_local_key,
                                   split_state)
from fedlite.hadamard.layers import (FactorizedConv2d, FactorizedLayer, FactorizedLinear,
                                     HadamardConv2d, HadamardLinear, LowRankConv2d, LowRankLinear,
                                     PersonalHadamardConv2d, PersonalHadamardLinear)
from fedlite.hadamard.ranks import (MIN_RANK, factorized_params, lowrank_rank, rank_bounds,
                                    rank_for_gamma)

__all__ = [
    "FACTOR_PREFIX", "LAYERS", "LOCAL_PREFIX", "MIN_RANK", "ConversionReport", "FactorizedConv2d",
    "FactorizedLayer", "FactorizedLinear", "HadamardConv2d", "HadamardLinear", "LayerReport",
    "LowRankConv2d", "LowRankLinear", "PersonalHadamardConv2d", "PersonalHadamardLinear",
    "convert", "default_exclude", "factorized_params", "is_factor_key", "is_local_key",
    "lowrank_rank", "rank_bounds", "rank_for_gamma", "split_state",
]
