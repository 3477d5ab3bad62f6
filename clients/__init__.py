"""Flower ClientApp: a thin adapter between Flower Messages and ``fedlite``."""
