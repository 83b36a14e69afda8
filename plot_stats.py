"""Plot what a training run logged: losses, penalties, ADA's p, speed and metrics against kimg, e.g.

    # Figures of one run, written to <run>/plots/.
    python plot_stats.py ~/training-runs/00000-stylegan3-t-afhqv2-gpus8-batch32-gamma8.2

    # Two runs overlaid for comparison, smoothed, as PNG and SVG, with one CSV per term.
    python plot_stats.py RUN_A RUN_B --outdir=compare --smooth=0.8 --svg --csv

The input is the run folder's stats.jsonl (one line per tick, written by train.py) and every
metric-*.jsonl beside it. A run that is still training can be plotted at any time, and a run that
was continued from an earlier snapshot shows each kimg once: the ticks logged after that snapshot
by the interrupted process are superseded by those of the continuation.
"""

import csv
import io
import json
import os
import re

import click
import numpy as np

import dnnlib
import dnnlib.cli

# ----------------------------------------------------------------------------
# What is plotted: one figure per term, from the first of its statistics a run has.

TERMS = [
    # (file stem, title, statistics in order of preference)
    ('loss_D',          'D loss',                           ['Loss/D/loss']),
    ('penalty_D',       'D gradient penalty (R1 or WGAN-GP)', ['Loss/r1_penalty', 'Loss/gp_penalty']),
    ('loss_G',          'G loss',                           ['Loss/G/loss']),
    ('penalty_pl',      'Path length penalty',              ['Loss/pl_penalty']),
    ('augment_p',       "ADA's augmentation probability p", ['Progress/augment']),
    ('sec_per_kimg',    'Seconds per kimg',                 ['Timing/sec_per_kimg']),
]


class RunData:
    """The series of one run: per statistic name (kimg, mean, std), per metric result name (kimg, value)."""

    def __init__(self, run_dir, label):
        self.run_dir = run_dir
        self.label = label
        self.stats = dict()
        self.metrics = dict()
        self.skipped_lines = 0

# ----------------------------------------------------------------------------
# Reading the logs.


def read_jsonl(path):
    """(records, number of unreadable lines). A torn last line of a run still writing is not an error."""
    records, skipped = [], 0
    with open(path, encoding='utf-8') as f:
        lines = f.read().split('\n')
    for line_idx, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if isinstance(record, dict):
            records.append(record)
        elif line_idx != len(lines) - 1:
            skipped += 1
    return records, skipped


def latest_per_kimg(points):
    """Keeps, of (kimg, record) pairs in file order, the ones a continuation has not superseded: a
    point at or below an earlier kimg replaces every earlier point from that kimg on."""
    kept = []
    for kimg, record in points:
        while kept and kept[-1][0] >= kimg:
            kept.pop()
        kept.append((kimg, record))
    return kept


def snapshot_kimg(snapshot_pkl):
    """kimg of a snapshot file name: network-snapshot-000120.pkl -> 120, ...-000000.008.pkl -> 0.008."""
    if not isinstance(snapshot_pkl, str):
        return None
    match = re.search(r'network-snapshot-(\d+(?:\.\d+)?)\.pkl$', snapshot_pkl)
    return float(match.group(1)) if match else None


def read_run(run_dir, label):
    stats_path = os.path.join(run_dir, 'stats.jsonl')
    if not os.path.isfile(stats_path):
        raise click.ClickException(f'{run_dir} has no stats.jsonl: give the folder of a training run '
                                   f'(train.py writes stats.jsonl there at every tick)')
    run = RunData(run_dir=run_dir, label=label)
    try:
        records, run.skipped_lines = read_jsonl(stats_path)
    except (OSError, UnicodeDecodeError) as e:
        raise click.ClickException(f'cannot read {stats_path}: {e}') from None
    points = []
    for record in records:
        kimg = record.get('Progress/kimg')
        if isinstance(kimg, dict) and isinstance(kimg.get('mean'), (int, float)):
            points.append((float(kimg['mean']), record))
    for kimg, record in latest_per_kimg(points):
        for name, value in record.items():
            if isinstance(value, dict) and isinstance(value.get('mean'), (int, float)) and value.get('num', 1) > 0:
                run.stats.setdefault(name, []).append((kimg, float(value['mean']), float(value.get('std', 0.0))))

    for fname in sorted(os.listdir(run_dir)):
        match = re.fullmatch(r'metric-(.+)\.jsonl', fname)
        if not match:
            continue
        try:
            records, skipped = read_jsonl(os.path.join(run_dir, fname))
        except (OSError, UnicodeDecodeError) as e:
            raise click.ClickException(f'cannot read {os.path.join(run_dir, fname)}: {e}') from None
        run.skipped_lines += skipped
        points = [(snapshot_kimg(r.get('snapshot_pkl')), r) for r in records]
        for kimg, record in latest_per_kimg([(k, r) for k, r in points if k is not None]):
            for name, value in (record.get('results') or {}).items():
                if isinstance(value, (int, float)):
                    run.metrics.setdefault(name, []).append((kimg, float(value)))
    run.stats = {name: np.array(series, dtype=np.float64) for name, series in run.stats.items()}
    run.metrics = {name: np.array(series, dtype=np.float64) for name, series in run.metrics.items()}
    return run

# ----------------------------------------------------------------------------
# Figures.


def smooth(values, weight):
    """Exponential moving average with the start-up bias removed (as TensorBoard's slider); 0 = none."""
    values = np.asarray(values, dtype=np.float64)
    if weight <= 0 or len(values) == 0:
        return values
    result = np.empty_like(values)
    average, norm = 0.0, 0.0
    for idx, value in enumerate(values):
        average = average * weight + (1 - weight) * value
        norm = norm * weight + (1 - weight)
        result[idx] = average / norm
    return result


def line_figure(title, ylabel, series, smoothing):
    """A Figure with one line per (label, kimg, values); with smoothing, the raw values stay as a faint line.
    The data lines carry gid 'data', the smoothed ones gid 'smoothed', so tests can read them back."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(6.4, 4.0), layout='constrained')
    ax = fig.add_subplot()
    for color_idx, (label, kimg, values) in enumerate(series):
        color = f'C{color_idx % 10}'
        style = dict(marker='.', markersize=4) if len(kimg) < 50 else dict()
        if smoothing > 0:
            ax.plot(kimg, values, color=color, alpha=0.25, linewidth=1, gid='data', **style)
            ax.plot(kimg, smooth(values, smoothing), color=color, linewidth=1.5, label=label, gid='smoothed')
        else:
            ax.plot(kimg, values, color=color, linewidth=1.5, label=label, gid='data', **style)
    ax.set_title(title)
    ax.set_xlabel('kimg')
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    if len(series) > 1:
        ax.legend()
    return fig


def make_figures(runs, smoothing=0.0):
    """{file stem: Figure} for every term and metric that at least one run logged."""
    figures = dict()
    for stem, title, names in TERMS:
        series = []
        for run in runs:
            name = next((name for name in names if name in run.stats), None)
            if name is not None:
                data = run.stats[name]
                series.append((run.label, data[:, 0], data[:, 1]))
        if series:
            figures[stem] = line_figure(title, 'mean over the tick', series, smoothing)
    for metric in sorted({name for run in runs for name in run.metrics}):
        series = [(run.label, run.metrics[metric][:, 0], run.metrics[metric][:, 1]) for run in runs if metric in run.metrics]
        figures[f'metric-{metric}'] = line_figure(metric, metric, series, smoothing)
    return figures


def csv_text(data):
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator='\n')
    writer.writerow(['kimg', 'mean', 'std'] if data.shape[1] == 3 else ['kimg', 'value'])
    for row in data:
        writer.writerow([f'{v:.9g}' for v in row])
    return buffer.getvalue()


def term_csvs(run):
    """{file name: CSV text}: one per plotted term (as logged, unsmoothed) and one per metric."""
    result = dict()
    for stem, _title, names in TERMS:
        name = next((name for name in names if name in run.stats), None)
        if name is not None:
            result[f'{stem}.csv'] = csv_text(run.stats[name])
    for metric, data in run.metrics.items():
        result[f'metric-{metric}.csv'] = csv_text(data)
    return result

# ----------------------------------------------------------------------------


def run_labels(run_dirs):
    """Legend labels: the folder names, with their parent folder's name where they clash."""
    paths = [os.path.abspath(d) for d in run_dirs]
    names = [os.path.basename(p) for p in paths]
    return [os.path.join(os.path.basename(os.path.dirname(p)), name) if names.count(name) > 1 else name
            for p, name in zip(paths, names)]


@click.command()
@click.argument('run_dirs', nargs=-1, required=True, metavar='RUN_DIR...')
@click.option('--outdir', help='Where to write the plots  [default: RUN_DIR/plots of the first run]', metavar='DIR')
@click.option('--smooth', 'smoothing', help='Exponential smoothing weight, 0 (none) to below 1', type=click.FloatRange(min=0, max=1, max_open=True), default=0, show_default=True)
@click.option('--svg', help='Also write each figure as SVG', is_flag=True)
@click.option('--csv', 'write_csv', help='Also write one CSV per term and metric (per run)', is_flag=True)
def main(run_dirs, outdir, smoothing, svg, write_csv):
    """Plot the statistics of one or more training runs against kimg (several runs are overlaid).

    \b
    Figures: D loss, D gradient penalty, G loss, path length penalty, ADA p, sec/kimg, and each metric.
    """
    for run_dir in run_dirs:
        if not os.path.isdir(run_dir):
            raise click.ClickException(f'no such training run folder: {run_dir}')
    runs = [read_run(run_dir, label) for run_dir, label in zip(run_dirs, run_labels(run_dirs))]
    for run in runs:
        if run.skipped_lines:
            print(f'warn: skipped {run.skipped_lines} unreadable line(s) in the logs of {run.run_dir}')
    if not any(run.stats for run in runs):
        raise click.ClickException('no tick logged yet: stats.jsonl is empty (plot again once the first tick is done)')
    outdir = outdir if outdir is not None else os.path.join(run_dirs[0], 'plots')
    dnnlib.cli.check_output_dir(outdir, '--outdir')
    os.makedirs(outdir, exist_ok=True)

    written = []
    try:
        for stem, fig in make_figures(runs, smoothing=smoothing).items():
            for ext in ['png'] + (['svg'] if svg else []):
                path = os.path.join(outdir, f'{stem}.{ext}')
                dnnlib.util.write_atomically(path, lambda f, fig=fig, ext=ext: fig.savefig(f, format=ext, dpi=100))
                written.append(path)
        if write_csv:
            for run in runs:
                prefix = '' if len(runs) == 1 else f'{re.sub(r"[^A-Za-z0-9._-]+", "_", run.label)}-'
                for fname, text in term_csvs(run).items():
                    path = os.path.join(outdir, prefix + fname)
                    dnnlib.util.write_atomically(path, lambda f, text=text: f.write(text.encode('utf-8')))
                    written.append(path)
    except OSError as e:
        raise click.ClickException(f'--outdir: cannot write in {outdir}: {e.strerror or e}') from None
    print(f'Wrote {len(written)} files to {outdir}')


if __name__ == '__main__':
    main()
