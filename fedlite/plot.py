"""Run plots: one run or several overlaid, accuracy and loss against round, bytes and wall clock.

Each run is one colour. Solid lines are the central test set; for personalized runs (rounds with
``client-accuracy-mean``) a dashed line is the mean over the clients' own test splits and the band
around it one standard deviation, the spread between clients. A black cross marks a round the
server skipped (``round-skipped``: too few good replies, model unchanged). The legend names each
run by the run-config keys whose values differ between the runs, the run id when none does.
"""

from __future__ import annotations

import json
import os
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from fedlite.records import read_rounds  # noqa: E402

# Keys that say where a run is written, not what it trains: never what tells runs apart.
NOT_SETTINGS = frozenset({"results-dir", "run-name", "resume-from"})
LABEL_WIDTH = 60  # a longer legend label wraps onto more lines
X_AXES = (("round", "round"), ("megabytes", "cumulative MB on the wire (down + up)"),
          ("elapsed", "wall clock (s, cumulative round seconds)"))


def save_figure(fig: plt.Figure, path: str | os.PathLike) -> Path:
    """Lay out, write (creating its directory) and close a figure."""
    target = Path(path)
    fig.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=120)
    plt.close(fig)
    return target


def plot_run(run_dir: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Write ``accuracy.png`` (or ``out``) for one run directory and return its path."""
    return plot_runs([run_dir], out)


def plot_runs(run_dirs: Sequence[str | os.PathLike],
              out: str | os.PathLike | None = None) -> Path:
    """Overlay the runs in one figure and write it to ``out``; return its path.

    Default ``out``: ``RUN_DIR/accuracy.png`` for one run, ``comparison.png`` beside the first
    run's directory for several."""
    if not run_dirs:
        raise ValueError("give at least one run directory")
    runs = [RecordedRun.read(path) for path in run_dirs]  # all read before anything is drawn
    if out is None:
        first = Path(run_dirs[0])
        out = first / "accuracy.png" if len(runs) == 1 else first.parent / "comparison.png"
    fig = figure(runs)  # laid out around its legend already: saved as is
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=110)
    plt.close(fig)
    return target


class RecordedRun:
    """One run as the plot sees it: its id, its run config and its rounds in order."""

    def __init__(self, run_id: str, config: Mapping[str, Any], rounds: list[dict[str, Any]]):
        self.run_id, self.config, self.rounds = run_id, config, rounds
        self.label = run_id

    @classmethod
    def read(cls, run_dir: str | os.PathLike) -> RecordedRun:
        path = Path(run_dir)
        rounds = sorted(read_rounds(path), key=lambda r: r["round"])
        config_file = path / "config.json"
        try:  # a run without one (written by hand, or by an older fedlite) is named by its id
            config = json.loads(config_file.read_text()).get("config", {}) \
                if config_file.is_file() else {}
        except json.JSONDecodeError as err:
            raise ValueError(f"{config_file}: not valid JSON ({err})") from None
        return cls(path.name.removesuffix(".partial"), config, rounds)

    def series(self, key: str) -> tuple[dict[str, list[float]], list[float]]:
        """x values (by X_AXES name) and y values of the rounds that have ``key``."""
        elapsed, xs = 0.0, {name: [] for name, _ in X_AXES}
        ys: list[float] = []
        for line in self.rounds:
            elapsed += float(line.get("seconds", 0.0))
            if line.get(key) is None:
                continue
            xs["round"].append(line["round"])
            xs["megabytes"].append(line.get("cumulative-bytes", 0) / 1e6)
            xs["elapsed"].append(elapsed)
            ys.append(float(line[key]))
        return xs, ys

    def skipped(self, key: str) -> tuple[dict[str, list[float]], list[float]]:
        xs, ys = self.series(key)
        rounds = {line["round"] for line in self.rounds if line.get("round-skipped")}
        keep = [i for i, r in enumerate(xs["round"]) if r in rounds]
        return {name: [v[i] for i in keep] for name, v in xs.items()}, [ys[i] for i in keep]


def run_labels(configs: Sequence[Mapping[str, Any]], run_ids: Sequence[str]) -> list[str]:
    """Each run named by the settings that differ between the runs (``lr=0.1, model=mlp``);
    the run id where nothing differs, or where two runs would get the same name."""
    keys = list(dict.fromkeys(k for c in configs for k in c if k not in NOT_SETTINGS))
    differing = [k for k in keys
                 if len({json.dumps(c.get(k), sort_keys=True) for c in configs}) > 1]
    labels = [", ".join(f"{k}={_show(c.get(k))}" for k in differing) or run_id
              for c, run_id in zip(configs, run_ids, strict=False)]
    return [f"{label} ({run_id})" if labels.count(label) > 1 and label != run_id else label
            for label, run_id in zip(labels, run_ids, strict=False)]


def _show(value: Any) -> str:
    if value is None:
        return "unset"
    if value == "":
        return '""'
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str) and ":" in value and "." in value.split(":")[0]:
        return value.rsplit(":", 1)[1]  # an import path: the class name says it
    return str(value)


def figure(runs: Sequence[RecordedRun]) -> plt.Figure:
    """Two rows (accuracy, loss) by three columns (round, bytes, wall clock), one colour a run."""
    names = run_labels([r.config for r in runs], [r.run_id for r in runs])
    for run, label in zip(runs, names, strict=True):
        run.label = label
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colours = [colours[i % len(colours)] for i in range(len(runs))]
    personalized = any(run.series("client-accuracy-mean")[1] for run in runs)
    skipped = any(line.get("round-skipped") for run in runs for line in run.rounds)
    handles, labels, columns = _legend(runs, colours, personalized, skipped)
    legend_lines = -(-sum(label.count("\n") + 1 for label in labels) // columns)
    fig, axes = plt.subplots(2, 3, figsize=(15, 7.6 + 0.17 * legend_lines), sharey="row",
                             squeeze=False, layout="constrained")
    for run, colour in zip(runs, colours, strict=True):
        for column, (x_name, _) in enumerate(X_AXES):
            _draw(run, colour, x_name, accuracy=axes[0][column], loss=axes[1][column])
    _decorate(fig, axes, runs)
    fig.legend(handles, labels, loc="outside lower center", frameon=False, fontsize=9,
               ncol=columns)
    return fig


def _draw(run: RecordedRun, colour: str, x_name: str, accuracy: plt.Axes, loss: plt.Axes) -> None:
    """One run's curves on one column: central accuracy (solid), the clients' mean accuracy
    (dashed) with its spread (band), central loss, and a cross on every skipped round."""
    xs, central = run.series("accuracy")
    if central:
        accuracy.plot(xs[x_name], [100 * y for y in central], "-", marker="o", markersize=3,
                      color=colour, label=run.label)
    xs, mean = run.series("client-accuracy-mean")
    if mean:
        _, std = run.series("client-accuracy-std")
        std = std if len(std) == len(mean) else [0.0] * len(mean)
        accuracy.plot(xs[x_name], [100 * m for m in mean], "--", color=colour,
                      label=f"{run.label} (clients' mean)" if central else run.label)
        accuracy.fill_between(xs[x_name],
                              [max(0.0, 100 * (m - d)) for m, d in zip(mean, std, strict=True)],
                              [min(100.0, 100 * (m + d)) for m, d in zip(mean, std, strict=True)],
                              color=colour, alpha=0.15, linewidth=0)
    xs, ys = run.series("loss")
    if ys:
        loss.plot(xs[x_name], ys, "-", marker="o", markersize=3, color=colour, label=run.label)
    for axis, key, scale in ((accuracy, "accuracy" if central else "client-accuracy-mean", 100),
                             (loss, "loss", 1)):
        xs, ys = run.skipped(key)
        if ys:
            axis.plot(xs[x_name], [scale * y for y in ys], "x", color="black", markersize=8,
                      markeredgewidth=2, zorder=5, label="_skipped")  # "_": not a run's curve


def _legend(runs: Sequence[RecordedRun], colours: Sequence[str], personalized: bool,
            skipped: bool) -> tuple[list, list[str], int]:
    """One entry a run (its colour), then what the line styles and marks mean."""
    handles: list = [plt.Line2D([], [], color=colour, linewidth=2.5) for colour in colours]
    labels = ["\n".join(textwrap.wrap(run.label, LABEL_WIDTH, break_on_hyphens=False))
              for run in runs]
    if personalized:
        handles += [plt.Line2D([], [], color="gray", marker="o", markersize=3),
                    (plt.Rectangle((0, 0), 1, 1, color="gray", alpha=0.25, linewidth=0),
                     plt.Line2D([], [], color="gray", linestyle="--"))]
        labels += ["central test set", "clients' own test splits: mean ± std"]
    if skipped:
        handles.append(plt.Line2D([], [], linestyle="none", marker="x", color="black",
                                  markersize=8, markeredgewidth=2))
        labels.append("skipped round (model unchanged)")
    widest = max(len(line) for label in labels for line in label.splitlines())
    return handles, labels, max(1, min(len(labels), 150 // (widest + 8)))


def _decorate(fig: plt.Figure, axes, runs: Sequence[RecordedRun]) -> None:
    for column, (_, x_label) in enumerate(X_AXES):
        axes[0][column].set_title(f"accuracy by {x_label.split(' (')[0]}", fontsize=11)
        axes[1][column].set_title(f"loss by {x_label.split(' (')[0]}", fontsize=11)
        axes[1][column].set_xlabel(x_label)
        for row in (0, 1):
            axes[row][column].grid(alpha=0.3)
            if column == 0:  # rounds are whole numbers
                axes[row][column].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0][0].set_ylabel("accuracy (%)")
    axes[1][0].set_ylabel("central test loss")
    losses = [y for run in runs for y in run.series("loss")[1] if y > 0]
    if losses and max(losses) / min(losses) > 50:  # an exploding run would flatten the others
        for axis in axes[1]:
            axis.set_yscale("log")
    if len(runs) == 1:
        fig.suptitle(runs[0].run_id, fontsize=12)
