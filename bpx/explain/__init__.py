"""Explain mode: every number of one backpropagation step, recorded from the real training step
(:mod:`bpx.explain.record`) and rendered as a textbook derivation in text, Markdown or LaTeX
(:mod:`bpx.explain.render`) or drawn (:mod:`bpx.explain.plot`); small networks come from JSON
specs (:mod:`bpx.explain.spec`)."""

from .record import LayerTrace, Neuron, ParamTrace, StepTrace, check_size, explain
from .render import FORMATS, render

__all__ = ["FORMATS", "LayerTrace", "Neuron", "ParamTrace", "StepTrace", "check_size", "explain", "render"]
