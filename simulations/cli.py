"""``fedlite``: run scenarios on Flower's simulation engine, list them, plot runs, benchmark."""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
import tomllib

from fedlite.errors import ConfigError, RunFailed

EPILOG = """\
examples:
  fedlite run                          the default scenario (Fashion-MNIST, 20 clients, FedAvg)
  fedlite run default num-rounds=3 lr=0.1
  fedlite run my_scenario.toml strategy=flwr.serverapp.strategy:FedMedian
  fedlite list                         scenarios and what they do
  fedlite keys                         every run-config key with its default
  fedlite plot results/<run-id>        re-draw a run's plot
  fedlite bench overhead --quick       a benchmark, side by side with its baseline
  fedlite chain --teacher results/<run-id> --models resnet14,resnet26
                                       progressive FSP chain from a trained resnet8 teacher
"""


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        code = args.handler(args)
        sys.stdout.flush()  # a reader that left shows up here, not as noise at exit
        return code
    except (ConfigError, FileNotFoundError, ValueError, TimeoutError) as err:
        print(f"fedlite: error: {err}", file=sys.stderr)
        return 2
    except RunFailed as err:
        print(f"fedlite: run failed: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("fedlite: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader left early (`fedlite keys | head`): end quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush
        return 141  # what a shell reports for a process ended by SIGPIPE


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fedlite", description="Federated learning on Flower's simulation engine (Ray).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run a scenario", description=textwrap.dedent("""\
        Run a scenario on Flower's simulation engine (a few SuperNodes per Ray actor, each
        hosting a share of the clients: docs/SCALE.md). Records go to
        results/<run-id>/ (config.json, rounds.jsonl, summary.json, accuracy.png, checkpoint)."""))
    run.add_argument("scenario", nargs="?", default="default",
                     help="scenario name (`fedlite list`) or path to a .toml file")
    run.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                     help="run-config or [federation] overrides, e.g. num-rounds=5")
    run.add_argument("--verbose", action="store_true", help="show Flower's and Ray's logs")
    run.add_argument("--resume", metavar="RUN_DIR",
                     help="continue a killed run from its last completed round: give its "
                          "results/<run-id>.partial and the same scenario and overrides "
                          "(num-rounds may grow); same as resume-from=RUN_DIR")
    run.set_defaults(handler=_run)

    sub.add_parser("list", help="list scenarios").set_defaults(handler=_list)
    sub.add_parser("keys", help="list run-config keys and defaults").set_defaults(handler=_keys)

    plot = sub.add_parser(
        "plot", help="plot runs, several overlaid", description=textwrap.dedent("""\
        Accuracy and loss against round, cumulative bytes and wall clock, one colour a run,
        skipped rounds marked; personalized runs also show the clients' mean accuracy and its
        spread. The legend names each run by the run-config keys that differ between them."""))
    plot.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="results/<run-id> directories")
    plot.add_argument("--out", help="PNG path (default: RUN_DIR/accuracy.png for one run, "
                                    "comparison.png beside the first RUN_DIR for several)")
    plot.set_defaults(handler=_plot)

    from simulations.bench import BENCHMARKS

    bench = sub.add_parser("bench", help="run a benchmark and its baseline, write JSON")
    bench.add_argument("name", choices=sorted(BENCHMARKS))
    bench.add_argument("--quick", action="store_true", help="a small version (about a minute)")
    bench.add_argument("--out", help="JSON path (default: results/bench/NAME[-quick].json)")
    bench.set_defaults(handler=_bench)

    from simulations.chain import add_parser as add_chain_parser

    add_chain_parser(sub)

    from fedlite.data.sources import DOWNLOADS

    download = sub.add_parser("download", help="download a dataset's files (needs internet)")
    download.add_argument("dataset", choices=DOWNLOADS)
    download.add_argument("--dest", help="directory (default: ~/.cache/fedlite/DATASET)")
    download.set_defaults(handler=_download)
    return parser


def _run(args: argparse.Namespace) -> int:
    from simulations.engine import simulate
    from simulations.progress import pct, print_progress
    from simulations.scenarios import load_scenario

    overrides = list(args.overrides)
    if args.resume:
        overrides.append(f"resume-from={args.resume}")
    if "=" in args.scenario:  # `fedlite run lr=0.1`: overrides of the default scenario
        args.scenario, overrides = "default", [args.scenario, *overrides]
    scenario = load_scenario(args.scenario, overrides)
    cfg = scenario.config
    print(f"fedlite: scenario {scenario.name}: {scenario.description}", flush=True)
    print(f"fedlite: {start_line(cfg)}", flush=True)
    for note in scenario.notes:
        print(f"fedlite: {note}", flush=True)
    # bad input stops in simulate's checks, before Ray starts: the line says both steps
    print(f"fedlite: checking the run, then starting the simulation runtime (Ray) with "
          f"{cfg.num_clients} clients ...", flush=True)
    records: list = []

    def started(run_dir, done: int) -> None:
        records.append(run_dir)
        resumed = f", continuing after round {done} of {cfg.num_rounds}" if done else ""
        print(f"fedlite: records in {run_dir}{resumed}", flush=True)

    try:
        summary = simulate(cfg, scenario.resources, verbose=args.verbose,
                           on_round=print_progress(cfg.num_rounds), on_start=started)
    except KeyboardInterrupt:
        exit_interrupted(records[0] if records else None)
    client = summary.get("final-client-accuracy-mean")
    # Personalized models are judged on each client's own split, not the central test set.
    accuracy = (f"mean client accuracy {pct(client)} "
                f"(std {pct(summary['final-client-accuracy-std'])}), "
                f"central {pct(summary['final-accuracy'])}" if client is not None
                else f"final accuracy {pct(summary['final-accuracy'])}")
    dense = summary.get("total-dense-bytes")
    saving = f" (dense model: {dense / 1e6:.1f} MB)" if dense else ""
    print(f"fedlite: done: {accuracy}, {summary['total-bytes'] / 1e6:.1f} MB on the wire{saving}, "
          f"records in {summary['run-dir']}")
    return 0


def exit_interrupted(run_dir) -> None:
    """End the process at once after Ctrl-C (Ray is already stopped): Flower's worker threads
    may still wait on Ray, and a normal exit would wait for them. A second Ctrl-C meanwhile
    ends it too."""
    import signal

    signal.signal(signal.SIGINT, lambda *_: os._exit(130))
    hint = f"; continue it with --resume {run_dir}" if run_dir else ""
    print(f"fedlite: interrupted{hint}", file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(130)


def start_line(cfg) -> str:
    """The run as it will be, after the overrides: strategy, model, data, clients, rounds,
    and the methods that are on."""
    from fedlite.methods import table

    strategy = cfg.strategy.rpartition(":")[2] or cfg.strategy.rpartition(".")[2]
    methods = [method.label for method, settings in table.active(cfg) if settings is not None]
    text = (f"{strategy}, model {cfg.model}, dataset {cfg.dataset}, {cfg.num_clients} clients, "
            f"{cfg.num_rounds} rounds, seed {cfg.seed}")
    if cfg.resume_from:
        text += f", resuming {cfg.resume_from}"
    return text + (f"; methods: {', '.join(methods)}" if methods else "")


def _list(_: argparse.Namespace) -> int:
    from simulations.scenarios import scenario_names, scenario_path

    names = scenario_names()
    width = max(map(len, names), default=0) + 2
    for name in names:
        data = tomllib.loads(scenario_path(name).read_text())
        print(f"{name:<{width}}{data.get('description', '')}")
    return 0


def _keys(_: argparse.Namespace) -> int:
    from simulations.key_help import keys_text

    print(keys_text())
    return 0


def _plot(args: argparse.Namespace) -> int:
    from fedlite.plot import plot_runs

    print(plot_runs(args.run_dirs, args.out))
    return 0


def _bench(args: argparse.Namespace) -> int:
    from simulations.bench import run_benchmark

    run_benchmark(args.name, quick=args.quick, out=args.out, argv=sys.argv)
    return 0


def _download(args: argparse.Namespace) -> int:
    from fedlite.data import download

    print(download(args.dataset, args.dest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
