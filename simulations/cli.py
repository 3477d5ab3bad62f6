"""``fedlite``: run scenarios on Flower's simulation engine, list them, plot runs, benchmark."""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
import tomllib

from fedlite.config import ConfigError, RunConfig

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
        Run a scenario on Flower's simulation engine, one SuperNode per client. Records go to
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

    plot = sub.add_parser("plot", help="re-draw the plot of a run directory")
    plot.add_argument("run_dir")
    plot.add_argument("--out", help="PNG path (default: RUN_DIR/accuracy.png)")
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
    from simulations.scenarios import load_scenario

    overrides = list(args.overrides)
    if args.resume:
        overrides.append(f"resume-from={args.resume}")
    if "=" in args.scenario:  # `fedlite run lr=0.1`: overrides of the default scenario
        args.scenario, overrides = "default", [args.scenario, *overrides]
    scenario = load_scenario(args.scenario, overrides)
    cfg = scenario.config
    print(f"fedlite: scenario {scenario.name}: {scenario.description}", flush=True)
    for note in scenario.notes:
        print(f"fedlite: {note}", flush=True)
    summary = simulate(cfg, scenario.resources, verbose=args.verbose, on_round=print_progress(cfg))
    client = summary.get("final-client-accuracy-mean")
    # Personalized models are judged on each client's own split, not the central test set.
    accuracy = (f"mean client accuracy {_pct(client)} (std {_pct(summary['final-client-accuracy-std'])}), "
                f"central {_pct(summary['final-accuracy'])}" if client is not None
                else f"final accuracy {_pct(summary['final-accuracy'])}")
    dense = summary.get("total-dense-bytes")
    saving = f" (dense model: {dense / 1e6:.1f} MB)" if dense else ""
    print(f"fedlite: done: {accuracy}, {summary['total-bytes'] / 1e6:.1f} MB on the wire{saving}, "
          f"records in {summary['run-dir']}")
    return 0


def print_progress(cfg: RunConfig):
    def show(line: dict) -> None:
        parts = [f"round {line['round']:>3}/{cfg.num_rounds}"]
        if line.get("accuracy") is not None:
            parts.append(f"accuracy {_pct(line['accuracy'])}  loss {line['loss']:.3f}")
        if line.get("client-accuracy-mean") is not None:
            parts.append(f"client accuracy {_pct(line['client-accuracy-mean'])}")
        if "bytes-down" in line:
            parts.append(f"down {line['bytes-down'] / 1e6:.2f} MB  up {line['bytes-up'] / 1e6:.2f} MB"
                         f"  replies {line['replies-ok']} ok {line['replies-failed']} failed")
        parts += method_parts(line)
        parts.append(f"{line['seconds']:.1f} s")
        print("  ".join(parts), flush=True)
    return show


def method_parts(line: dict) -> list[str]:
    """What a method did this round, so a run shows it is on: skipping, FSP's stage."""
    parts = []
    if line.get("train/skip-backprop-fraction") is not None:
        parts.append(f"backprop {_pct(line['train/skip-backprop-fraction'])}"
                     f"  tau {line['train/skip-threshold']:.2f}")
    if line.get("stage") is not None:
        fsp_loss = line.get("train/fsp-loss")
        parts.append(f"stage {line['stage']}"
                     + (f"  fsp-loss {fsp_loss:.3f}" if fsp_loss is not None else ""))
    return parts


def _list(_: argparse.Namespace) -> int:
    from simulations.scenarios import scenario_names, scenario_path

    names = scenario_names()
    width = max(map(len, names), default=0) + 2
    for name in names:
        data = tomllib.loads(scenario_path(name).read_text())
        print(f"{name:<{width}}{data.get('description', '')}")
    return 0


def _keys(_: argparse.Namespace) -> int:
    from simulations.key_help import toml_lines

    print("\n".join(toml_lines(RunConfig().to_flat())))
    return 0


def _plot(args: argparse.Namespace) -> int:
    from fedlite.plot import plot_run

    print(plot_run(args.run_dir, args.out))
    return 0


def _bench(args: argparse.Namespace) -> int:
    from simulations.bench import run_benchmark

    run_benchmark(args.name, quick=args.quick, out=args.out, argv=sys.argv)
    return 0


def _download(args: argparse.Namespace) -> int:
    from fedlite.data import download

    print(download(args.dataset, args.dest))
    return 0


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


if __name__ == "__main__":
    sys.exit(main())
