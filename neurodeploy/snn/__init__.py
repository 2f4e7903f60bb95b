"""Neuron dynamics, surrogates, the spiking network and the model zoo."""
from .models import create_ann, create_model, create_snn, list_models, register_model
from .network import SpikingNetwork, TimeDropout
from .neuron import NeuronSpec, NeuronState, SpikingNeuron, neuron_step
from .surrogate import ATanSurrogate, LinearSurrogate, make_surrogate

__all__ = [
    "ATanSurrogate", "LinearSurrogate", "NeuronSpec", "NeuronState", "SpikingNetwork", "SpikingNeuron",
    "TimeDropout", "create_ann", "create_model", "create_snn", "list_models", "make_surrogate", "neuron_step", "register_model",
]
