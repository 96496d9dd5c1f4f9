"""The layer registry: the names layers are written under in configurations and checkpoints."""

import bpx
from bpx.nn.layer import Layer, layer_from_config, type_name


class ModuleLevelLayer(bpx.Identity):
    """A user layer: registered under its module and qualified name."""


def test_bpx_layers_go_by_their_class_name_and_others_by_module_and_qualified_name():
    assert type_name(bpx.Dense) == "Dense" and Layer.registry["Dense"] is bpx.Dense
    assert type_name(ModuleLevelLayer) == f"{__name__}.ModuleLevelLayer"
    assert Layer.registry[f"{__name__}.ModuleLevelLayer"] is ModuleLevelLayer

    class Local(bpx.Identity):
        pass

    Local.__module__ = "bpx.nn.somewhere"  # a class local to a function, even inside bpx, keeps its full name
    assert type_name(Local) == "bpx.nn.somewhere.test_bpx_layers_go_by_their_class_name_and_others_by_module_and_" \
                               "qualified_name.<locals>.Local"


def test_user_layers_are_rebuilt_from_a_configuration():
    net = bpx.Sequential(bpx.Dense(2, 3), ModuleLevelLayer(), seed=0)
    copy = bpx.Sequential.from_config(net.config())
    assert type(copy.layers[1]) is ModuleLevelLayer
    assert isinstance(layer_from_config("Dense", {"in_features": 2, "out_features": 3}), bpx.Dense)
