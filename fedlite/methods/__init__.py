"""The methods fedlite attaches to a run: the protocol (``base``) and the one table (``table``)."""

from fedlite.methods.base import ClientRound, Evaluator, Method, RunSetup

__all__ = ["ClientRound", "Evaluator", "Method", "RunSetup"]
