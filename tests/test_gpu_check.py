"""benchmarks/gpu_check.py, the prepared GPU check, kept working on machines without a GPU: its parts run at
tiny sizes on the CPU, and the driver says in its report that there is no GPU."""

import os
import sys

import pytest

from helpers import REPO_ROOT, run_python

sys.path.insert(0, os.path.join(REPO_ROOT, 'benchmarks'))
import gpu_check  # noqa: E402


def test_network_timing_runs(capsys):
    assert gpu_check.part_networks(device='cpu', resolution=16, batch=2, channel_base=256, repeats=1)
    lines = [line for line in capsys.readouterr().out.splitlines() if 'forward' in line or 'step' in line]
    assert len(lines) == 6 and all(line.rstrip().endswith('x') for line in lines)


def test_profile_prints_the_op_table(capsys):
    assert gpu_check.part_profile(device='cpu', resolution=16, batch=2, channel_base=256, steps=1, rows=50)
    out = capsys.readouterr().out
    assert 'sorted by self_cpu_time_total' in out and 'modulated_conv2d' in out


@pytest.mark.slow
def test_training_timing_reads_sec_per_kimg(tmp_path):
    data = str(tmp_path / 'fields-16x16.zip')
    gpu_check.write_dataset(data, resolution=16, num_images=8)
    options = ['--cfg=stylegan2', '--gpus=1', '--batch=4', '--gamma=1', '--cbase=128', '--cmax=16', '--map-depth=1',
               '--mbstd-group=2', '--workers=0', '--aug=noaug']
    outdir = tmp_path / 'runs'
    outdir.mkdir()
    value = gpu_check.training_seconds_per_kimg(os.path.join(REPO_ROOT, 'train.py'), options, data, str(outdir),
                                                timeout=600, kimg='0.008', tick='0.004')
    assert isinstance(value, float) and value > 0, value


def test_without_a_gpu_the_report_says_so(tmp_path):
    result = run_python(['benchmarks/gpu_check.py', f'--out={tmp_path}', '--budget=120'])
    report = (tmp_path / 'gpu_check.md').read_text()
    if 'GPU 0' in report:
        pytest.skip('a GPU is visible')
    assert result.returncode == 1 and 'No CUDA GPU is visible' in report
