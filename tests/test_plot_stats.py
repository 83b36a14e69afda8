"""plot_stats.py on real tiny runs: files written, plotted points equal to stats.jsonl, overlays, continued runs."""

import json
import os
import shutil

import numpy as np
import pytest

import plot_stats
from helpers import run_python
from metrics import metric_main
from test_train import TINY, write_dataset
from training import snapshots


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """Two runs of one short training: one straight ('a'), and a copy of it that lost its last snapshot's pair,
    as if killed just before it, and was then continued ('b')."""
    root = tmp_path_factory.mktemp('plot_stats')
    data = write_dataset(root / 'squares-16x16.zip')
    common = ['--cfg=stylegan2', '--data', data, '--aug=ada', '--kimg=0.016'] + [a for a in TINY if not a.startswith('--snap')]
    straight = run_python(['train.py', '--outdir', str(root / 'a'), '--snap=2'] + common)
    assert straight.returncode == 0, straight.stderr[-3000:]
    run_a = str(root / 'a' / os.listdir(root / 'a')[0])
    run_b = str(root / 'b' / os.path.basename(run_a))
    shutil.copytree(run_a, run_b)
    for name in (snapshots.snapshot_pkl_name('000000.016'), snapshots.training_state_name('000000.016')):
        os.remove(os.path.join(run_b, name))
    logged_before = [json.loads(line) for line in open(os.path.join(run_b, 'stats.jsonl'))]
    resumed = run_python(['train.py', '--outdir', str(root / 'b'), '--snap=2', '--resume', run_b] + common)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    for run_dir in (run_a, run_b):  # A metric at two snapshots, written by the metric writer itself.
        for stem, value in (('000000', 300.0), ('000000.008', 250.5)):
            result = dict(results=dict(fid50k_full=value + len(run_dir) % 7), metric='fid50k_full', total_time=1.0,
                          total_time_str='1s', num_gpus=1)
            metric_main.report_metric(result, run_dir=run_dir, snapshot_pkl=os.path.join(run_dir, snapshots.snapshot_pkl_name(stem)))
    return dict(root=root, a=run_a, b=run_b, b_logged_before=logged_before)


def _stats(run_dir):
    return [json.loads(line) for line in open(os.path.join(run_dir, 'stats.jsonl'))]


def _lines(fig, gid='data'):
    return [line for line in fig.axes[0].get_lines() if line.get_gid() == gid]


def test_one_run_writes_every_figure_and_the_points_are_the_logged_values(runs):
    result = run_python(['plot_stats.py', runs['a'], '--svg', '--csv'])
    assert result.returncode == 0, result.stderr
    written = sorted(os.listdir(os.path.join(runs['a'], 'plots')))
    stems = ['augment_p', 'loss_D', 'loss_G', 'metric-fid50k_full', 'penalty_D', 'penalty_pl', 'sec_per_kimg']
    assert written == sorted([f'{s}.{ext}' for s in stems for ext in ('png', 'svg', 'csv')])

    records = _stats(runs['a'])
    figures = plot_stats.make_figures([plot_stats.read_run(runs['a'], 'a')])
    for stem, name in [('loss_D', 'Loss/D/loss'), ('penalty_D', 'Loss/r1_penalty'), ('loss_G', 'Loss/G/loss'),
                       ('penalty_pl', 'Loss/pl_penalty'), ('augment_p', 'Progress/augment'), ('sec_per_kimg', 'Timing/sec_per_kimg')]:
        expected = [(r['Progress/kimg']['mean'], r[name]['mean']) for r in records if name in r and r[name]['num'] > 0]
        (line,) = _lines(figures[stem])
        assert len(expected) >= (1 if 'penalty' in name else 2), name  # Lazy regularisation: few ticks log it.
        np.testing.assert_array_equal(line.get_xdata(), [k for k, _ in expected])
        np.testing.assert_array_equal(line.get_ydata(), [v for _, v in expected])
    (line,) = _lines(figures['metric-fid50k_full'])
    np.testing.assert_array_equal(line.get_xdata(), [0, 0.008])
    metric_lines = [json.loads(line) for line in open(os.path.join(runs['a'], 'metric-fid50k_full.jsonl'))]
    np.testing.assert_array_equal(line.get_ydata(), [r['results']['fid50k_full'] for r in metric_lines])

    csv_rows = open(os.path.join(runs['a'], 'plots', 'loss_G.csv')).read().splitlines()
    assert csv_rows[0] == 'kimg,mean,std'
    logged = [(r['Progress/kimg']['mean'], r['Loss/G/loss']['mean']) for r in records if r.get('Loss/G/loss', {}).get('num')]
    np.testing.assert_allclose([[float(v) for v in row.split(',')[:2]] for row in csv_rows[1:]], logged, rtol=1e-8)


def test_a_continued_run_shows_each_kimg_once_with_the_continuations_values(runs, tmp_path):
    records = _stats(runs['b'])
    kimgs = [r['Progress/kimg']['mean'] for r in records]
    assert len(kimgs) == len(set(kimgs))  # Continuing dropped the lines logged after the snapshot it used.
    before = {r['Progress/kimg']['mean']: r['Timing/sec_per_tick']['mean'] for r in runs['b_logged_before']}
    timing = {r['Progress/kimg']['mean']: r['Timing/sec_per_tick']['mean'] for r in records}
    assert any(before[k] != timing[k] for k in before if k > 0.008)  # Those kimg hold the continuation's values.

    # A log that repeats kimg after a continuation (as the official code writes it): later lines win.
    kept = next(i for i, (a, b) in enumerate(zip(records, runs['b_logged_before'])) if a != b)
    official = tmp_path / os.path.basename(runs['b'])
    official.mkdir()
    with open(official / 'stats.jsonl', 'w') as f:
        f.writelines(json.dumps(r) + '\n' for r in runs['b_logged_before'] + records[kept:])
    run = plot_stats.read_run(str(official), 'b')
    plotted = run.stats['Loss/D/loss'][:, 0]
    assert list(plotted) == sorted(set(kimgs))
    last_logged = {r['Progress/kimg']['mean']: r['Loss/D/loss']['mean'] for r in records}
    np.testing.assert_array_equal(run.stats['Loss/D/loss'][:, 1], [last_logged[k] for k in plotted])
    np.testing.assert_array_equal(run.stats['Timing/sec_per_tick'][:, 1], [timing[k] for k in run.stats['Timing/sec_per_tick'][:, 0]])


def test_two_runs_overlaid_with_a_legend_and_smoothing(runs, tmp_path):
    result = run_python(['plot_stats.py', runs['a'], runs['b'], f'--outdir={tmp_path / "cmp"}', '--smooth=0.6', '--csv'])
    assert result.returncode == 0, result.stderr
    assert 'loss_D.png' in os.listdir(tmp_path / 'cmp')
    labels = plot_stats.run_labels([runs['a'], runs['b']])  # The two folders have the same name.
    assert labels == [f'{k}/{os.path.basename(runs[k])}' for k in 'ab']
    assert {f'{k}_{os.path.basename(runs[k])}-loss_D.csv' for k in 'ab'} <= set(os.listdir(tmp_path / 'cmp'))
    data = [plot_stats.read_run(runs[k], k) for k in 'ab']
    figure = plot_stats.make_figures(data, smoothing=0.6)['loss_D']
    assert [text.get_text() for text in figure.axes[0].get_legend().get_texts()] == ['a', 'b']
    raw, smoothed = _lines(figure, 'data'), _lines(figure, 'smoothed')
    assert len(raw) == len(smoothed) == 2
    values = data[0].stats['Loss/D/loss'][:, 1]
    np.testing.assert_array_equal(raw[0].get_ydata(), values)
    expected, average, norm = [], 0.0, 0.0
    for value in values:
        average, norm = 0.6 * average + 0.4 * value, 0.6 * norm + 0.4
        expected.append(average / norm)
    np.testing.assert_allclose(smoothed[0].get_ydata(), expected, rtol=1e-12)


def test_a_run_still_writing_and_bad_folders(runs, tmp_path):
    live = tmp_path / 'live'
    live.mkdir()
    lines = open(os.path.join(runs['a'], 'stats.jsonl')).read().splitlines()
    (live / 'stats.jsonl').write_text('\n'.join(lines[:3]) + '\n' + lines[3][:25])  # A tick half written.
    result = run_python(['plot_stats.py', str(live)])
    assert result.returncode == 0, result.stderr
    assert plot_stats.read_run(str(live), 'live').stats['Loss/G/loss'].shape[0] <= 3
    for bad, message in [(tmp_path / 'missing', 'no such training run folder'), (tmp_path, 'has no stats.jsonl')]:
        result = run_python(['plot_stats.py', str(bad)])
        assert result.returncode != 0 and 'Traceback' not in result.stderr and message in result.stderr
    empty = tmp_path / 'empty'
    empty.mkdir()
    (empty / 'stats.jsonl').write_text('')
    result = run_python(['plot_stats.py', str(empty)])
    assert result.returncode != 0 and 'no tick logged yet' in result.stderr


def test_latest_per_kimg():
    points = [(0, 'a'), (4, 'b'), (8, 'c'), (12, 'd'), (8, 'e'), (12, 'f'), (16, 'g')]
    assert plot_stats.latest_per_kimg(points) == [(0, 'a'), (4, 'b'), (8, 'e'), (12, 'f'), (16, 'g')]
    assert plot_stats.snapshot_kimg('network-snapshot-000120.pkl') == 120
    assert plot_stats.snapshot_kimg('network-snapshot-000000.008.pkl') == 0.008
    assert plot_stats.snapshot_kimg(None) is None
