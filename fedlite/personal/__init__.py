"""Personalization by keeping parts of the model on the client: FedPer (Arivazhagan et al.,
https://arxiv.org/abs/1912.00818; run-config key ``local-modules``) and Local training
(``federated = false``: nothing travels)."""
