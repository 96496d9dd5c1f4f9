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


def test_layer_subclassing_cooperates_with_other_bases():
    """``Layer.__init_subclass__`` passes on to the next base: a mixin's hook still runs, and an
    unknown class keyword is refused as Python refuses it."""
    seen = []

    class Recording:
        def __init_subclass__(cls, **kwargs):
            super().__init_subclass__(**kwargs)
            seen.append(cls.__name__)

    class Mixed(bpx.Identity, Recording):
        pass

    assert seen == ["Mixed"] and Layer.registry[type_name(Mixed)] is Mixed
    try:
        class Unknown(bpx.Identity, colour="red"):  # type: ignore[call-arg]
            pass
    except TypeError:
        pass
    else:
        raise AssertionError("a class keyword no base accepts must raise TypeError")


class HalfConfigured(bpx.Dense):
    """A user layer whose configuration forgets ``use_bias`` (so a rebuilt one has a bias), cloned
    by the generic :meth:`Layer.clone` that user layers inherit."""

    clone = Layer.clone

    def config(self):
        cfg = super().config()
        cfg.pop("use_bias", None)
        return cfg


def test_clone_refuses_a_configuration_that_rebuilds_other_parameters():
    import pytest

    layer = HalfConfigured(2, 3, use_bias=False)
    assert len(layer.parameters()) == 1 and len(type(layer)(**layer.config()).parameters()) == 2
    with pytest.raises(ValueError):
        layer.clone()
