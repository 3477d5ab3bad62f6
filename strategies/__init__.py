"""Flower ServerApp and strategy adapters: load any Strategy by import path, account for bytes."""
