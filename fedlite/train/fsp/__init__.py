"""FSP progressive knowledge transfer.

Implementation based on Yim et al., "A Gift from Knowledge Distillation: Fast Optimization,
Network Minimization and Transfer Learning", CVPR 2017,
https://openaccess.thecvf.com/content_cvpr_2017/html/Yim_A_Gift_From_CVPR_2017_paper.html,
and the progressive transfer of patent KR 10-2063377,
https://patents.google.com/patent/KR102063377B1.

- ``matrix``: FSP matrices of a section's first and last maps, and the Euclidean FSP loss;
- ``term``: stage 1 as a loss term that replaces cross-entropy (``task_loss=False``);
- ``cache``: the teacher's matrices computed once per sample and reused;
- ``teacher``: the trained teacher, loaded from a run's checkpoint once per worker process;
- ``settings``: run-config keys ``fsp.*`` (the stage is derived from the round number);
- ``method``: the method-table entry that attaches stage 1 to a client's round;
- ``chain``: the progressive chain teacher -> intermediates -> target, checked up front;
- ``selection``: how many intermediates (claim 8), from measured costs and accuracies.
Stage 2 is plain training from the stage-1 weights: the federation just keeps going.
"""

from fedlite.lazy import exports

_WHERE = {
    "cache": ["TeacherMatrices", "teacher_matrices"],
    "chain": ["check_chain", "resnet_depth"],
    "matrix": ["fsp_loss", "fsp_matrices", "fsp_matrix"],
    "selection": ["ChainError", "Measured", "Next", "Plan", "next_network",
                  "select_intermediates"],
    "settings": ["FspConfig"],
    "teacher": ["checkpoint_path", "load_teacher"],
    "term": ["FspTerm", "sections_of"],
}
__all__ = sorted(name for names in _WHERE.values() for name in names)
__getattr__, __dir__ = exports(__name__, {n: m for m, names in _WHERE.items() for n in names})
