"""The `fedlite` command in-process: bad input fails fast, before Ray, with a helpful message."""

from __future__ import annotations

import subprocess
import sys
import time
import tomllib

import pytest

from fedlite.config import RunConfig
from fedlite.data import find_idx_dir
from fedlite.records import RunRecorder
from fedlite.config import key_help
from simulations.cli import main
from simulations.key_help import FEDERATION_DEFAULTS


def _ray_started() -> bool:
    ray = sys.modules.get("ray")
    return ray is not None and ray.is_initialized()


@pytest.fixture
def run_fails(tmp_path, capsys, partition_cache):
    """Run `fedlite run SCENARIO ARGS... results-dir=<tmp>`; assert it fails before any run
    starts and return its error line."""
    results = tmp_path / "results"

    def invoke(*args: str, scenario: str = "digits-smoke") -> str:
        start = time.perf_counter()
        code = main(["run", scenario, *args, f"results-dir={results}"])
        elapsed = time.perf_counter() - start
        err = capsys.readouterr().err
        assert code == 2, err
        # Flower's own log lines may come first; the error is the last line
        last = err.strip().splitlines()[-1]
        assert last.startswith("fedlite: error: "), err
        assert not results.exists(), "a results directory was created before validation failed"
        assert not _ray_started()
        assert elapsed < 30, f"validation took {elapsed:.1f} s"
        return last

    return invoke


def test_unknown_key(run_fails):
    err = run_fails("num-round=3")
    assert "unknown run config key `num-round`" in err and "did you mean `num-rounds`" in err


def test_dirichlet_alpha_zero(run_fails):
    err = run_fails("dirichlet-alpha=0")
    assert "`dirichlet-alpha`" in err and "must be > 0" in err


def test_strategy_module_that_does_not_exist(run_fails):
    err = run_fails("strategy=nonexistent.module:X")
    assert "strategy 'nonexistent.module:X'" in err and "cannot import 'nonexistent.module'" in err
    assert "PYTHONPATH" in err


def test_strategy_that_is_not_a_strategy(run_fails):
    err = run_fails("strategy=collections:OrderedDict")
    assert "collections:OrderedDict" in err
    assert "not a subclass of flwr.serverapp.strategy.Strategy" in err


def test_strategy_kwargs_that_do_not_fit(run_fails):
    err = run_fails("strategy-kwargs={\"fraction_trian\": 0.5}")
    assert "strategy-kwargs do not fit FedAvg" in err and "fraction_trian" in err


def test_unknown_dataset(run_fails):
    err = run_fails("dataset=cifar")
    assert "`dataset`" in err and "digits, fashion-mnist, mnist" in err


def test_unknown_model(run_fails):
    err = run_fails("model=resnet10")
    assert "unknown model 'resnet10'" in err and "resnet20" in err


def test_more_clients_than_samples(run_fails):
    err = run_fails("num-clients=5000")
    assert "num-clients=5000" in err and "lower `num-clients`" in err


def test_mnist_files_missing(run_fails):
    if find_idx_dir("mnist", "/nonexistent"):
        pytest.skip("MNIST IDX files are installed here")
    err = run_fails("dataset=mnist", "data-dir=/nonexistent")
    assert "mnist IDX files not found" in err and "/nonexistent" in err
    assert "fedlite download mnist" in err and "data-dir" in err


def test_image_model_on_shakespeare(run_fails, tiny_sdist):
    err = run_fails("dataset=shakespeare", f"data-dir={tiny_sdist}", "partitioner=natural",
                    "num-clients=4", "model=cnn")
    assert "model cnn reads images" in err and "set `model` to lstm" in err


def test_hugging_face_column_missing(run_fails, tmp_path):
    from datasets import Dataset, DatasetDict

    split = Dataset.from_dict({"img": [[[0, 1], [2, 3]]] * 8, "label": [0, 1] * 4})
    DatasetDict({"train": split, "test": split}).save_to_disk(str(tmp_path / "hf"))
    err = run_fails("dataset=hf:me/tiny", f"data-dir={tmp_path / 'hf'}", "num-clients=2")
    assert "run config `hf-image-column`" in err and "'image'" in err and "img" in err


def test_unknown_scenario(run_fails):
    err = run_fails(scenario="no-such-scenario")
    assert "no scenario 'no-such-scenario'" in err and "default" in err and "fedlite list" in err


def test_malformed_override(run_fails):
    err = run_fails("foo")
    assert "override 'foo' is not key=value" in err and "num-rounds=5" in err


def test_scenario_file_with_an_unknown_table(run_fails, tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('description = "x"\n[configs]\nnum-rounds = 1\n')
    err = run_fails(scenario=str(path))
    assert str(path) in err and "unknown tables ['configs']" in err


def test_bad_federation_override(run_fails):
    err = run_fails("client-resources-num-cpus=0")
    assert "client-resources-num-cpus must be > 0" in err
    err = run_fails("client-resources-num-gpus=half")
    assert "`client-resources-num-gpus`: expected a number, got 'half'" in err


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "usage: fedlite" in capsys.readouterr().out


def test_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for command in ("run", "list", "keys", "plot", "bench", "download"):
        assert command in out


def test_list_shows_the_scenarios(capsys):
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = [line.split()[0] for line in lines]
    assert "default" in names and "digits-smoke" in names
    assert all(len(line.split(maxsplit=1)) == 2 for line in lines), "a scenario lacks a description"
    starts = {line.index(line.split(maxsplit=1)[1]) for line in lines}
    assert len(starts) == 1, "descriptions start in one column, after the longest name"


def test_keys_prints_every_key_as_toml_a_scenario_can_take(capsys):
    assert main(["keys"]) == 0
    out = capsys.readouterr().out
    # Assert: a [config] table with every default and a [federation] table, each with help
    tables = tomllib.loads(out)
    assert tables["config"] == RunConfig().to_flat()
    assert tables["federation"] == FEDERATION_DEFAULTS
    assert all(line.split("# ", 1)[1].strip() for line in out.splitlines()
               if line and not line.startswith("["))


def test_every_key_has_one_line_of_help():
    helps = key_help()
    assert set(helps) == set(RunConfig().to_flat())
    assert all(text.strip() and "\n" not in text for text in helps.values())


def test_plot_a_recorded_run(tmp_path, capsys):
    # Prepare
    recorder = RunRecorder(tmp_path / "results", "plotted", {})
    for server_round in (1, 2):
        recorder.log_round({"round": server_round, "accuracy": 0.4 * server_round,
                            "loss": 1.0, "bytes-down": 1000, "bytes-up": 1000})
    run_dir = recorder.finish({"final-accuracy": 0.8})
    out = tmp_path / "other.png"
    # Execute
    assert main(["plot", str(run_dir)]) == 0
    assert main(["plot", str(run_dir), "--out", str(out)]) == 0
    # Assert
    printed = capsys.readouterr().out.split()
    assert printed == [str(run_dir / "accuracy.png"), str(out)]
    assert (run_dir / "accuracy.png").stat().st_size > 0 and out.stat().st_size > 0


def test_plot_a_directory_that_is_not_a_run(tmp_path, capsys):
    assert main(["plot", str(tmp_path)]) == 2
    assert "rounds.jsonl not found" in capsys.readouterr().err


def test_a_reader_that_leaves_early_gets_no_traceback():
    # Execute: like `fedlite keys | head -1`
    proc = subprocess.Popen([sys.executable, "-m", "simulations.cli", "keys"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # before it writes: its first write meets a closed pipe
    err = proc.stderr.read().decode()
    # Assert
    assert proc.wait(timeout=60) == 141, err  # as if ended by SIGPIPE, the shells' code
    assert "Traceback" not in err and "Exception ignored" not in err, err


@pytest.mark.parametrize("argv", [["--help"], ["list"], ["keys"]])
def test_help_list_and_keys_import_no_torch(argv):
    # a fresh interpreter: this test process has torch loaded already
    probe = ("import sys\nfrom simulations.cli import main\ntry:\n    main(sys.argv[1:])\n"
             "except SystemExit:\n    pass\nprint('torch' in sys.modules, file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True,
                          timeout=120)
    assert done.stderr.strip().splitlines()[-1] == "False", done.stderr


def test_the_start_line_shows_the_run_after_its_overrides():
    from simulations.cli import start_line
    from simulations.scenarios import load_scenario

    cfg = load_scenario("default", ["strategy=flwr.serverapp.strategy:FedAdam", "model=mlp",
                                    "dataset=digits", "num-clients=7", "num-rounds=3",
                                    "seed=5", "skip.enabled=true"]).config
    line = start_line(cfg)
    assert line.startswith("FedAdam, model mlp, dataset digits, 7 clients, 3 rounds, seed 5")
    assert "methods: " in line and "skip" in line.split("methods: ")[1].lower()
