import os
import textwrap

import numpy as np
import pytest

from torch_utils import training_stats


def test_collector_mean_std_num():
    collector = training_stats.Collector(regex='TestA/.*')
    training_stats.report('TestA/loss', [1.0, 2.0, 3.0])
    training_stats.report('TestA/loss', 4.0)
    training_stats.report('TestB/other', 100.0)
    collector.update()
    assert collector.names() == ['TestA/loss']
    assert collector.num('TestA/loss') == 4
    assert collector.mean('TestA/loss') == pytest.approx(2.5)
    assert collector.std('TestA/loss') == pytest.approx(np.std([1, 2, 3, 4]))
    assert collector['TestA/loss'] == pytest.approx(2.5)
    stats = collector.as_dict()
    assert stats['TestA/loss'].num == 4

    # keep_previous: a quiet interval keeps the last value.
    collector.update()
    assert collector.mean('TestA/loss') == pytest.approx(2.5)
    fresh = training_stats.Collector(regex='TestA/.*', keep_previous=False)
    fresh.update()
    assert np.isnan(fresh.mean('TestA/loss')) and fresh.num('TestA/loss') == 0


def test_report_returns_value_and_ignores_empty():
    assert training_stats.report('TestC/x', 3.0) == 3.0
    assert training_stats.report('TestC/x', []) == []
    collector = training_stats.Collector(regex='TestC/.*')
    training_stats.report0('TestC/x', 7.0)
    collector.update()
    assert collector.num('TestC/x') == 1 and collector.mean('TestC/x') == 7.0


def test_distributed_reduction(tmp_path):
    script = textwrap.dedent(f'''
        import os, sys, torch
        from torch_utils import training_stats
        rank = int(sys.argv[1])
        torch.distributed.init_process_group('gloo', init_method='file://{tmp_path}/rdv', rank=rank, world_size=2)
        training_stats.init_multiprocessing(rank=rank, sync_device=torch.device('cpu'))
        c = training_stats.Collector()
        training_stats.report('v', [rank * 10.0, rank * 10.0 + 2])
        training_stats.report0('only0', 5.0)
        c.update()
        print(c.num('v'), c.mean('v'), c.num('only0'))
        torch.distributed.destroy_process_group()
    ''')
    script_path = tmp_path / 'dist.py'
    script_path.write_text(script)
    import subprocess, sys
    from helpers import REPO_ROOT
    env = dict(os.environ, PYTHONPATH=REPO_ROOT)
    procs = [subprocess.Popen([sys.executable, str(script_path), str(r)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for r in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert out.split() == ['4', '6.0', '1']
