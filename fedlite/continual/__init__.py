"""Federated class-incremental learning: tasks on rounds, a growing classifier, one prototype
per old class with learnable bounded augmentation, a joint embedding, and a smaller second
model trained from two teachers (the first model's feature/embedding and its classifier).

Kept import-free: ``fedlite.config`` imports ``fedlite.continual.settings`` to declare the
section. The client's round is ``fedlite.continual.client.continual_round``; the server's
evaluation is ``fedlite.continual.evaluation.ContinualTracker``.
"""
