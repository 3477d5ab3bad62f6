"""Strategies by import path: Flower's own, a user's file outside the repo, and every error."""

from __future__ import annotations

import sys
import textwrap
import uuid

import pytest
from flwr.serverapp.strategy import FedAvg, FedMedian, Strategy

from strategies.loading import accepted_arguments, import_object, load_strategy

USER_STRATEGY = textwrap.dedent('''
    from flwr.serverapp.strategy import FedAvg

    class ScaledFedAvg(FedAvg):
        """A user's strategy: FedAvg with one extra argument."""

        def __init__(self, scale: float = 1.0, fraction_train: float = 1.0,
                     min_available_nodes: int = 2) -> None:
            super().__init__(fraction_train=fraction_train,
                             min_available_nodes=min_available_nodes)
            self.scale = scale

    def helper():
        return 1
''')


@pytest.fixture
def user_file(tmp_path):
    path = tmp_path / "outside" / "my_strategy.py"
    path.parent.mkdir()
    path.write_text(USER_STRATEGY)
    return path


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """The same strategy as an importable module on sys.path; removed from sys.modules after."""
    name = f"user_strategies_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(USER_STRATEGY)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


@pytest.mark.parametrize("path", ["flwr.serverapp.strategy:FedAvg",
                                  "flwr.serverapp.strategy.FedAvg"])
def test_flower_strategy_loads(path):
    strategy = load_strategy(path, {"fraction_train": 0.5, "min_available_nodes": 3})
    assert type(strategy) is FedAvg
    assert strategy.fraction_train == 0.5 and strategy.min_available_nodes == 3


def test_other_flower_strategy_and_its_arguments():
    assert type(load_strategy("flwr.serverapp.strategy:FedMedian", {})) is FedMedian
    accepted = accepted_arguments("flwr.serverapp.strategy:FedAvg")
    assert {"fraction_train", "fraction_evaluate", "min_available_nodes"} <= accepted


def test_user_file_outside_the_repo(user_file):
    # Execute
    strategy = load_strategy(f"{user_file}:ScaledFedAvg", {"scale": 2.0, "fraction_train": 0.25})
    # Assert
    assert isinstance(strategy, Strategy) and isinstance(strategy, FedAvg)
    assert strategy.scale == 2.0 and strategy.fraction_train == 0.25
    assert accepted_arguments(f"{user_file}:ScaledFedAvg") == \
        {"scale", "fraction_train", "min_available_nodes"}


@pytest.mark.parametrize("sep", [":", "."])
def test_user_module_on_sys_path(user_module, sep):
    strategy = load_strategy(f"{user_module}{sep}ScaledFedAvg", {"scale": 3.0})
    assert strategy.scale == 3.0


@pytest.mark.parametrize("path", ["nonexistent.module:X", "nonexistent_module_zz.X"])
def test_bad_module(path):
    with pytest.raises(ValueError, match=r"cannot import 'nonexistent.*PYTHONPATH"):
        load_strategy(path, {})


def test_missing_file(tmp_path):
    with pytest.raises(ValueError, match=r"cannot import .*nope\.py.*does not exist"):
        load_strategy(f"{tmp_path}/nope.py:X", {})


def test_file_with_a_syntax_error(tmp_path):
    # Prepare
    path = tmp_path / "broken.py"
    path.write_text("class Broken(:\n")
    # Execute / Assert
    with pytest.raises(ValueError, match=r"cannot import .*broken\.py"):
        load_strategy(f"{path}:Broken", {})
    assert "fedlite_user_broken" not in sys.modules


def test_missing_attribute(user_file):
    with pytest.raises(ValueError, match=r"has no attribute 'FedAvgg'"):
        load_strategy(f"{user_file}:FedAvgg", {})
    with pytest.raises(ValueError, match=r"module 'flwr.serverapp.strategy' has no attribute"):
        load_strategy("flwr.serverapp.strategy:FedAvgg", {})


@pytest.mark.parametrize("path", ["collections:OrderedDict", "os:sep", "USER:helper"])
def test_not_a_strategy(path, user_file):
    path = path.replace("USER", str(user_file))
    with pytest.raises(ValueError, match="not a subclass of flwr.serverapp.strategy.Strategy"):
        load_strategy(path, {})
    with pytest.raises(ValueError, match="not a subclass"):
        accepted_arguments(path)  # the ServerApp asks this first


def test_a_strategy_for_another_model_kind_is_refused_before_any_worker_starts(tmp_path):
    # FedXgbBagging (or a subclass) merges XGBoost boosters and fails at the first aggregation
    # of a torch model's arrays: refused when the strategy is built, naming the alternatives.
    path = tmp_path / "bagging.py"
    path.write_text("from flwr.serverapp.strategy import FedXgbBagging\n"
                    "class MyBagging(FedXgbBagging):\n    pass\n")
    for spec in ("flwr.serverapp.strategy:FedXgbBagging", f"{path}:MyBagging"):
        with pytest.raises(ValueError, match=r"cannot train fedlite's models: .*XGBoost.*FedAvg"):
            load_strategy(spec, {})
    cyclic = load_strategy("flwr.serverapp.strategy:FedXgbCyclic", {})  # passes a model on
    assert isinstance(cyclic, FedAvg)


@pytest.mark.parametrize("path", ["FedAvg", ":FedAvg", "flwr.serverapp.strategy:"])
def test_not_an_import_path(path):
    with pytest.raises(ValueError, match="is not an import path.*package.module:Class"):
        import_object(path)


def test_kwargs_that_do_not_fit(user_file):
    with pytest.raises(ValueError, match=r"strategy-kwargs do not fit FedAvg: .*'fraction_trian'"):
        load_strategy("flwr.serverapp.strategy:FedAvg", {"fraction_trian": 0.5})
    with pytest.raises(ValueError, match=r"do not fit ScaledFedAvg: .*'lr'"):
        load_strategy(f"{user_file}:ScaledFedAvg", {"lr": 0.1})


def test_accepted_arguments_follow_kwargs_to_the_parent(tmp_path):
    # Prepare: the usual subclass of FedAvg that forwards **kwargs
    module = tmp_path / "forwarding.py"
    module.write_text(
        "from flwr.serverapp.strategy import FedAvg\n"
        "class Forwarding(FedAvg):\n"
        "    def __init__(self, extra: int = 0, **kwargs):\n"
        "        super().__init__(**kwargs)\n")
    # Execute
    names = accepted_arguments(f"{module}:Forwarding")
    # Assert
    assert {"extra", "fraction_train", "min_available_nodes"} <= names
