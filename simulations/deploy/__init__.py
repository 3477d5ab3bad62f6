"""Deployment on Flower's own runtime: SuperLink, SuperNodes, TLS, node keys."""
