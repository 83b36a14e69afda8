"""Bad input to every command-line tool: missing, empty, corrupt and hostile files, wrong types, out-of-range
numbers, output locations that are files, under a file, read-only or full. Each case must end with one line
naming the problem, a non-zero exit status, no traceback, and nothing half-written."""

import concurrent.futures
import io
import json
import os
import pickle
import subprocess
import zipfile

import numpy as np
import PIL.Image
import pytest

from helpers import run_python
from test_train import write_dataset
from tool_networks import save_network_pkl, tiny_generator

# ----------------------------------------------------------------------------
# The files the cases use.


def png_bytes(array):
    buf = io.BytesIO()
    PIL.Image.fromarray(array).save(buf, format='png')
    return buf.getvalue()


def write_zip(path, entries):
    with zipfile.ZipFile(path, 'w') as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return str(path)


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp('bad-input')
    rgb = np.full([16, 16, 3], 100, np.uint8)
    good = write_dataset(root / 'good.zip')
    f = dict(root=root, good=good)
    f['missing'] = str(root / 'missing.zip')
    f['empty'] = str(root / 'empty.pkl')
    (root / 'empty.pkl').write_bytes(b'')
    f['garbage'] = str(root / 'garbage.pkl')
    (root / 'garbage.pkl').write_bytes(os.urandom(4096))
    f['a_file'] = str(root / 'a-file')
    (root / 'a-file').write_text('not a folder')
    f['net'] = save_network_pkl(tiny_generator(), root / 'net.pkl')
    data = (root / 'net.pkl').read_bytes()
    f['truncated_pkl'] = str(root / 'truncated.pkl')
    (root / 'truncated.pkl').write_bytes(data[:len(data) // 2])
    f['list_pkl'] = str(root / 'list.pkl')
    (root / 'list.pkl').write_bytes(pickle.dumps([1, 2, 3]))
    from training import networks_stylegan3
    G3 = networks_stylegan3.Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=3, channel_base=128,
                                      channel_max=16, mapping_kwargs=dict(num_layers=1))
    f['sg3_16'] = save_network_pkl(G3, root / 'sg3-16.pkl')
    f['truncated_zip'] = str(root / 'truncated.zip')
    (root / 'truncated.zip').write_bytes(open(good, 'rb').read()[:300])
    f['empty_zip'] = write_zip(root / 'empty.zip', {})
    f['corrupt_image_zip'] = write_zip(root / 'corrupt-image.zip', {'00000.png': png_bytes(rgb), '00001.png': b'\x89PNG broken'})
    f['mixed_size_zip'] = write_zip(root / 'mixed.zip', {'a.png': png_bytes(rgb), 'b.png': png_bytes(np.zeros([32, 32, 3], np.uint8))})
    f['grey_rgb_folder'] = str(root / 'grey-rgb')
    os.makedirs(f['grey_rgb_folder'])
    PIL.Image.fromarray(rgb).save(os.path.join(f['grey_rgb_folder'], 'a.png'))
    PIL.Image.fromarray(rgb[:, :, 0]).save(os.path.join(f['grey_rgb_folder'], 'b.png'))
    f['stray_labels_zip'] = write_zip(root / 'stray-labels.zip', {
        'a.png': png_bytes(rgb), 'b.png': png_bytes(rgb),
        'dataset.json': json.dumps({'labels': [['a.png', 0], ['b.png', 1], ['gone.png', 1]]})})
    f['image'] = str(root / 'target.png')
    PIL.Image.fromarray(rgb).save(f['image'])
    f['npy_pickle'] = str(root / 'w.npy')
    np.save(f['npy_pickle'], np.array([object()], dtype=object), allow_pickle=True)
    f['spectrum'] = str(root / 'spectrum.npz')
    np.savez(f['spectrum'], spectrum=np.ones([8, 8]), image_size=np.int64(4))
    return f


@pytest.fixture(scope='module')
def mounts(tmp_path_factory):
    """A read-only and a full folder (small tmpfs mounts), where this machine lets the tests mount them."""
    root = tmp_path_factory.mktemp('mounts')
    made = {}
    try:
        for name, options in (('readonly', 'ro,size=64k'), ('full', 'size=64k')):
            folder = root / name
            folder.mkdir()
            if subprocess.run(['mount', '-t', 'tmpfs', '-o', options, 'tmpfs', str(folder)], capture_output=True).returncode == 0:
                made[name] = folder
        if 'full' in made:
            fd = os.open(made['full'] / 'filler', os.O_WRONLY | os.O_CREAT)
            try:
                while os.write(fd, b'\0' * 4096) > 0:
                    pass
            except OSError:
                pass  # Full.
            finally:
                os.close(fd)
        yield made
    finally:
        for folder in made.values():
            subprocess.run(['umount', str(folder)], capture_output=True)

# ----------------------------------------------------------------------------
# The cases: (tool arguments, text the one error line contains, paths that must not exist afterwards).


def cases(f, mounts, out):
    net = f['net']
    train = ['train.py', f'--outdir={out}/runs', '--cfg=stylegan2', '--gpus=1', '--batch=4', '--gamma=1', '--metrics=none',
             '--cbase=128', '--cmax=16', '--mbstd-group=2', '--kimg=0.004', '--tick=0.004', '--workers=0']
    gen = ['gen_images.py', '--seeds=0']
    table = [
        # gen_images.py
        (gen + [f'--network={f["missing"]}', f'--outdir={out}/g'], 'no such file', ['g']),
        (gen + [f'--network={f["empty"]}', f'--outdir={out}/g'], 'not a readable pickle', ['g']),
        (gen + [f'--network={f["garbage"]}', f'--outdir={out}/g'], '--network', ['g']),
        (gen + [f'--network={f["truncated_pkl"]}', f'--outdir={out}/g'], 'truncated', ['g']),
        (gen + [f'--network={f["list_pkl"]}', f'--outdir={out}/g'], 'not a network pickle', ['g']),
        (gen + [f'--network={f["root"]}', f'--outdir={out}/g'], 'no such file', ['g']),
        (gen + [f'--network={net}', f'--outdir={out}/g', '--trunc=nan'], 'not a finite number', ['g']),
        (['gen_images.py', f'--network={net}', '--seeds=x', f'--outdir={out}/g'], '--seeds', ['g']),
        (gen + [f'--network={net}', f'--outdir={f["a_file"]}'], 'is a file', []),
        (gen + [f'--network={net}', f'--outdir={f["a_file"]}/sub'], 'is a file', []),
        (['gen_images.py', f'--network={net}', f'--projected-w={f["npy_pickle"]}', f'--outdir={out}/g'], 'not an .npz file', ['g']),
        (['gen_images.py', f'--network={net}', f'--projected-w={f["garbage"]}', f'--outdir={out}/g'], 'not an .npz file', ['g']),
        # gen_video.py
        (['gen_video.py', f'--network={net}', '--seeds=0-1', f'--output={out}/v.xyz'], 'does not end in', ['v.xyz']),
        (['gen_video.py', f'--network={net}', '--seeds=0-1', f'--output={f["root"]}'], 'is a folder', []),
        (['gen_video.py', f'--network={net}', '--seeds=0-1', f'--output={f["a_file"]}/v.mp4'], 'is a file', []),
        # train.py
        (train + [f'--data={f["good"]}', '--kimg=nan'], 'not a finite number', ['runs']),
        (train + [f'--data={f["missing"]}'], 'does not exist', ['runs']),
        (train + [f'--data={f["truncated_zip"]}'], 'damaged zip', ['runs']),
        (train + [f'--data={f["empty_zip"]}'], 'no image files', ['runs']),
        (train + [f'--data={f["corrupt_image_zip"]}'], '00001.png', ['runs']),
        (train + [f'--data={f["mixed_size_zip"]}'], 'same size', ['runs']),
        (train + [f'--data={f["stray_labels_zip"]}', '--cond=1'], 'gone.png', ['runs']),
        (train + [f'--data={f["good"]}', '--batch=6', '--mbstd-group=4'], 'multiple of --mbstd-group', ['runs']),
        (train + [f'--data={f["good"]}', f'--resume={f["sg3_16"]}'], 'does not fit', ['runs']),
        (train + [f'--data={f["good"]}', f'--resume={f["garbage"]}'], '--resume', ['runs']),
        (train + [f'--data={f["good"]}', f'--outdir={f["a_file"]}'], 'is a file', []),
        # calc_metrics.py
        (['calc_metrics.py', f'--network={f["garbage"]}', f'--data={f["good"]}'], '--network', []),
        (['calc_metrics.py', f'--network={net}', f'--data={f["missing"]}', '--metrics=fid50k_full'], 'no such dataset', []),
        (['calc_metrics.py', f'--network={net}', f'--data={f["good"]}', '--metrics=fid50k_full', f'--inception={f["garbage"]}'], 'detector', []),
        (['calc_metrics.py', f'--network={net}', f'--data={f["good"]}', '--metrics=bogus'], 'unknown metric', []),
        # avg_spectra.py
        (['avg_spectra.py', 'calc', f'--source={f["good"]}', f'--dest={f["root"]}', '--mean=0', '--std=1'], 'is a folder', []),
        (['avg_spectra.py', 'calc', f'--source={f["good"]}', f'--dest={f["a_file"]}/s.npz', '--mean=0', '--std=1'], 'is a file', []),
        (['avg_spectra.py', 'calc', f'--source={f["truncated_zip"]}', f'--dest={out}/s.npz', '--mean=0', '--std=1'], 'damaged zip', ['s.npz']),
        (['avg_spectra.py', 'calc', f'--source={f["good"]}', f'--dest={out}/s.npz', '--mean=nan', '--std=1'], 'not a finite number', ['s.npz']),
        (['avg_spectra.py', 'heatmap', f['spectrum'], f'--save={out}/h.xyz'], 'does not end in', ['h.xyz']),
        (['avg_spectra.py', 'heatmap', f['missing'], f'--save={out}/h.png'], 'cannot read spectrum file', ['h.png']),
        # projector.py
        (['projector.py', f'--network={net}', f'--target={f["missing"]}', f'--outdir={out}/p'], 'no such file', ['p']),
        (['projector.py', f'--network={net}', f'--target={f["garbage"]}', f'--outdir={out}/p'], '--target', ['p']),
        (['projector.py', f'--network={net}', f'--target={f["image"]}', f'--outdir={f["a_file"]}'], 'is a file', []),
        (['projector.py', f'--network={net}', f'--target={f["image"]}', f'--outdir={out}/p', f'--vgg16={f["garbage"]}'], 'VGG16', ['p']),
        # dataset_tool.py
        (['dataset_tool.py', f'--source={f["missing"]}', f'--dest={out}/d.zip'], 'source', ['d.zip']),
        (['dataset_tool.py', f'--source={f["good"]}', f'--dest={f["a_file"]}/d.zip'], 'dest', []),
        (['dataset_tool.py', f'--source={f["good"]}', f'--dest={out}/d.zip', '--resolution=abc'], 'resolution', ['d.zip']),
        (['dataset_tool.py', f'--source={f["corrupt_image_zip"]}', f'--dest={out}/d.zip'], '00001.png', ['d.zip']),
        (['dataset_tool.py', f'--source={f["grey_rgb_folder"]}', f'--dest={out}/d.zip'], 'all RGB or all grayscale', ['d.zip']),
        # export_weights.py
        (['export_weights.py', f'--network={net}', f'--dest={out}/w.pkl'], 'safetensors', ['w.pkl']),
        (['export_weights.py', f'--network={f["garbage"]}', f'--dest={out}/w.safetensors'], '--network', ['w.safetensors']),
    ]
    for kind, folder in mounts.items():  # Read-only, or full: both are found out before any work.
        table += [
            (gen + [f'--network={net}', f'--outdir={folder}/g'], 'cannot write', []),
            (train + [f'--data={f["good"]}', f'--outdir={folder}/runs'], 'cannot write', []),
            (['dataset_tool.py', f'--source={f["good"]}', f'--dest={folder}/d.zip'], 'cannot write', []),
        ]
        if kind == list(mounts)[0]:  # The other tools share the same check; one kind of folder is enough.
            table += [
                (['avg_spectra.py', 'heatmap', f['spectrum'], f'--save={folder}/h.png'], 'cannot write', []),
                (['gen_video.py', f'--network={net}', '--seeds=0-1', f'--output={folder}/v.mp4'], 'cannot write', []),
                (['export_weights.py', f'--network={net}', f'--dest={folder}/w.safetensors'], 'cannot write', []),
            ]
    return table


def run_case(case, out):
    args, expected, absent = case
    try:
        result = run_python(args, timeout=180)
    except subprocess.TimeoutExpired:
        return args, ['still running after 180 s'], ''
    problems = []
    lines = [line for line in result.stderr.splitlines() if line.startswith('Error')]
    if result.returncode == 0:
        problems.append('exit status 0')
    if 'Traceback' in result.stderr:
        problems.append('traceback')
    if len(lines) != 1:
        problems.append(f'{len(lines)} error lines')
    elif expected.lower() not in lines[0].lower():
        problems.append(f'error line lacks {expected!r}')
    for name in absent:
        if os.path.exists(os.path.join(out, name)):
            problems.append(f'{name} was written')
    return args, problems, result.stderr[-600:]


def test_every_tool_refuses_bad_input_in_one_line(files, mounts, tmp_path):
    table = cases(files, mounts, tmp_path)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda case: run_case(case, str(tmp_path)), table))
    failures = [f'{" ".join(args[:1] + [a for a in args[1:] if not a.startswith("--outdir")])}: {", ".join(problems)}\n{stderr}'
                for args, problems, stderr in results if problems]
    assert not failures, f'{len(failures)} of {len(table)} cases:\n' + '\n'.join(failures)
    # Checked once all have ended: cases run two at a time in one folder, so one may see another's temp file.
    leftovers = [name for name in os.listdir(tmp_path) if '.tmp-' in name]
    assert not leftovers, f'temporary files left (the process id is in each name): {leftovers}'
