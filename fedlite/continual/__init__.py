"""Federated class-incremental learning: tasks on rounds, a growing classifier, one prototype
per old class with learnable bounded augmentation, a joint embedding, and a smaller second
model trained from two teachers (the first model's feature/embedding and its classifier).

Kept import-free, so that reading the run config (``settings``) imports no torch. The method's
entry in the table is ``fedlite.continual.method.Continual``; the server's evaluation is
``fedlite.continual.evaluation.ContinualTracker``.
"""
