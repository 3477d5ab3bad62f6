"""Federated class-incremental learning: tasks on rounds, a growing classifier, one prototype
per old class with learnable bounded augmentation, a joint embedding, and a smaller second
model trained from two teachers (the first model's feature/embedding and its classifier).

Implementation based on patent application US 2026/0111797 A1 (KR 10-2024-0141487), "Method
and apparatus for knowledge distillation using teacher models". The PASS-style baseline follows
Zhu et al., "Prototype Augmentation and Self-Supervision for Incremental Learning", CVPR 2021,
https://openaccess.thecvf.com/content/CVPR2021/html/Zhu_Prototype_Augmentation_and_Self-Supervision_for_Incremental_Learning_CVPR_2021_paper.html.

Kept import-free, so that reading the run config (``settings``) imports no torch. The method's
entry in the table is ``fedlite.continual.method.Continual``; the server's evaluation is
``fedlite.continual.evaluation.ContinualTracker``.
"""
