"""The commands of the official StyleGAN3 README, run as written. Tiny networks stand in for the published
pickles and small detectors for the published ones: they are put in the download cache under the official
URLs, where a first download would have put the real files. `~` is a temporary home folder. Where a
command would take hours on a CPU, only a size is changed, and the comment says so."""

import os
import pickle
import shlex
import time

import numpy as np
import pytest

import dnnlib
from helpers import REPO_ROOT, run_python
from metric_standins import write_standin_detectors
from metrics import metric_utils
from test_dataset_tool import _fake_cifar10

NGC = 'https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan3/versions/1/files'


@pytest.fixture(scope='module')
def home(tmp_path_factory):
    root = tmp_path_factory.mktemp('official-commands')
    cache = root / 'cache'
    downloads = cache / 'downloads'
    downloads.mkdir(parents=True)
    from training import networks_stylegan3
    for resolution, names in ((16, ['stylegan3-r-afhqv2-512x512.pkl', 'stylegan3-r-ffhq-1024x1024.pkl']),
                              (32, ['stylegan3-t-ffhq-1024x1024.pkl'])):  # 32: compared with the CIFAR-10 stand-in.
        G = networks_stylegan3.Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=resolution, img_channels=3,
                                         channel_base=128, channel_max=16, num_layers=4,
                                         mapping_kwargs=dict(num_layers=1)).eval()
        pkl = str(root / f'tiny-sg3-{resolution}.pkl')
        with open(pkl, 'wb') as f:  # As the published pickles: the dataset they were trained on, by its path there.
            pickle.dump(dict(G=G, D=None, G_ema=G, augment_pipe=None, training_set_kwargs=dict(
                class_name='training.dataset.ImageFolderDataset', path='/data/ffhq-1024x1024.zip', use_labels=False,
                max_size=70000, xflip=True, resolution=resolution, random_seed=0)), f)
        for name in names:
            os.link(pkl, dnnlib.util.url_cache_path(f'{NGC}/{name}', cache_dir=str(downloads)))
    inception, _vgg16 = write_standin_detectors(root)
    os.link(inception, dnnlib.util.url_cache_path(metric_utils.INCEPTION_URL, cache_dir=str(downloads)))
    _fake_cifar10(root / 'cifar-10-python.tar.gz', batch_size=8)
    (root / 'home').mkdir()
    return root


def official(home, command, cwd=None):
    """Runs a README command line (`python script.py ...`) with HOME and the download cache of `home`."""
    args = shlex.split(command.replace('\\\n', ' '))
    assert args[0] == 'python'
    env = dict(HOME=str(home / 'home'), DNNLIB_CACHE_DIR=str(home / 'cache'), MPLBACKEND='Agg',
               XDG_CACHE_HOME=os.environ.get('XDG_CACHE_HOME', os.path.expanduser('~/.cache')))  # Built plugins.
    start = time.time()
    result = run_python([os.path.join(REPO_ROOT, args[1])] + args[2:], cwd=cwd, env=env, timeout=900)
    print(f'{time.time() - start:5.1f} s  {command}')
    assert result.returncode == 0, f'{command}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}'
    return result


def test_readme_commands(home):
    workdir = home / 'work'
    workdir.mkdir()
    run = lambda command: official(home, command, cwd=str(workdir))

    # Getting started.
    run(f'python gen_images.py --outdir=out --trunc=1 --seeds=2 --network={NGC}/stylegan3-r-afhqv2-512x512.pkl')
    assert (workdir / 'out' / 'seed0002.png').is_file()
    run(f'python gen_video.py --output=lerp.mp4 --trunc=1 --seeds=0-31 --grid=4x2 '
        f'--network={NGC}/stylegan3-r-afhqv2-512x512.pkl')
    assert (workdir / 'lerp.mp4').stat().st_size > 0

    # Preparing datasets (the CIFAR-10 archive is a small one of the same layout).
    run(f'python dataset_tool.py --source={home}/cifar-10-python.tar.gz --dest=~/datasets/cifar10-32x32.zip')
    dataset = home / 'home' / 'datasets' / 'cifar10-32x32.zip'
    assert dataset.is_file()

    # Training: the README's command (8 GPUs) checked with --dry-run, which prints the options it would use.
    result = run('python train.py --outdir=~/training-runs --cfg=stylegan3-t --data=~/datasets/cifar10-32x32.zip '
                 '--gpus=8 --batch=32 --gamma=8.2 --mirror=1 --dry-run')
    assert '"num_gpus": 8' in result.stdout and '"batch_size": 32' in result.stdout
    assert not (home / 'home' / 'training-runs').exists() or not os.listdir(home / 'home' / 'training-runs')

    # Quality metrics (sizes: 200 generated images instead of 50k).
    run(f'python calc_metrics.py --metrics=eqt200_int,eqr200 --network={NGC}/stylegan3-r-ffhq-1024x1024.pkl')
    run(f'python calc_metrics.py --metrics=fid200_full --data=~/datasets/cifar10-32x32.zip --mirror=1 '
        f'--network={NGC}/stylegan3-t-ffhq-1024x1024.pkl')

    # Spectral analysis (size: 16 generated images instead of 70000).
    result = run('python avg_spectra.py stats --source=~/datasets/cifar10-32x32.zip')
    assert '--mean=' in result.stdout and '--std=' in result.stdout
    run('python avg_spectra.py calc --source=~/datasets/cifar10-32x32.zip --dest=tmp/training-data.npz '
        '--mean=112.684 --std=69.509')
    run(f'python avg_spectra.py calc --source={NGC}/stylegan3-r-ffhq-1024x1024.pkl --dest=tmp/stylegan3-r.npz '
        f'--mean=112.684 --std=69.509 --num=16')
    run('python avg_spectra.py heatmap tmp/training-data.npz --save=tmp/training-data.png --dpi=300')
    run('python avg_spectra.py heatmap tmp/stylegan3-r.npz --save=tmp/stylegan3-r.png --dpi=300')
    run('python avg_spectra.py slices tmp/training-data.npz tmp/stylegan3-r.npz --save=tmp/slices.png --dpi=300')
    for name in ('training-data.npz', 'stylegan3-r.npz', 'training-data.png', 'stylegan3-r.png', 'slices.png'):
        assert (workdir / 'tmp' / name).stat().st_size > 0, name
    with np.load(workdir / 'tmp' / 'training-data.npz') as data:
        assert data['spectrum'].shape == (128, 128) and int(data['image_size']) == 32


# The Options column of the official docs/configs.md, each distinct line once (those with --resume=URL are in
# CONFIGS_MD_RESUME_OPTIONS).
CONFIGS_MD_OPTIONS = [
    '--cfg=stylegan3-t --gpus=8 --batch=32 --gamma=8.2 --mirror=1',
    '--cfg=stylegan3-t --gpus=1 --batch=32 --gamma=0.5 --batch-gpu=16 --snap=10',
    '--cfg=stylegan3-t --gpus=2 --batch=32 --gamma=0.5 --snap=20',
    '--cfg=stylegan3-t --gpus=4 --batch=32 --gamma=0.5',
    '--cfg=stylegan3-r --gpus=1 --batch=32 --gamma=0.5 --batch-gpu=16 --snap=10',
    '--cfg=stylegan3-r --gpus=2 --batch=32 --gamma=2 --batch-gpu=8 --snap=20',
    '--cfg=stylegan3-t --gpus=1 --batch=32 --gamma=32 --batch-gpu=4 --snap=5',
    '--cfg=stylegan3-r --gpus=4 --batch=32 --gamma=32 --batch-gpu=4 --snap=20',
    '--cfg=stylegan3-r --gpus=8 --batch=32 --gamma=32',
    '--cfg=stylegan2 --gpus=8 --batch=32 --gamma=10 --mirror=1 --aug=noaug',
    '--cfg=stylegan3-t --gpus=8 --batch=32 --gamma=32.8 --mirror=1 --aug=noaug',
    '--cfg=stylegan3-r --gpus=8 --batch=32 --gamma=32.8 --mirror=1 --aug=noaug',
    '--cfg=stylegan2 --gpus=8 --batch=32 --gamma=5 --mirror=1',
    '--cfg=stylegan3-r --gpus=8 --batch=32 --gamma=16.4 --mirror=1',
    '--cfg=stylegan2 --gpus=8 --batch=64 --gamma=1 --mirror=1 --aug=noaug --cbase=16384 --glr=0.0025 --dlr=0.0025 --mbstd-group=8',
    '--cfg=stylegan3-t --gpus=8 --batch=64 --gamma=1 --mirror=1 --aug=noaug --cbase=16384 --dlr=0.0025',
    '--cfg=stylegan2 --gpus=1 --batch=32 --gamma=0.1024 --map-depth=2 --glr=0.0025 --dlr=0.0025 --cbase=16384',
    '--cfg=stylegan2 --gpus=2 --batch=64 --gamma=0.0512 --map-depth=2 --glr=0.0025 --dlr=0.0025 --cbase=16384',
    '--cfg=stylegan2 --gpus=1 --batch=16 --gamma=0.8192 --map-depth=2 --glr=0.0025 --dlr=0.0025 --cbase=16384',
    '--cfg=stylegan2 --gpus=1 --batch=8 --gamma=6.5536 --map-depth=2 --glr=0.0025 --dlr=0.0025',
    '--cfg=stylegan2 --gpus=1 --batch=4 --gamma=52.4288 --map-depth=2',
    '--cfg=stylegan2 --gpus=8 --batch=32 --gamma=6.5536 --map-depth=2',
    '--cfg=stylegan2 --gpus=8 --batch=32 --gamma=10',
    '--cfg=stylegan2 --gpus=8 --batch=64 --gamma=1 --cbase=16384 --glr=0.0025 --dlr=0.0025 --mbstd-group=8',
    '--cfg=stylegan2 --gpus=8 --batch=64 --gamma=0.5 --glr=0.0025 --dlr=0.0025 --mbstd-group=8',
    '--cfg=stylegan2 --gpus=8 --batch=32 --gamma=2',
]


def test_configs_md_options_are_accepted(home):
    """Every configuration of the official docs/configs.md, checked with --dry-run (it prints the options)."""
    cifar = home / 'home' / 'datasets' / 'cifar10-32x32.zip'
    if not cifar.is_file():
        official(home, f'python dataset_tool.py --source={home}/cifar-10-python.tar.gz --dest=~/datasets/cifar10-32x32.zip')
    for options in CONFIGS_MD_OPTIONS:
        result = official(home, f'python train.py --outdir=~/training-runs --data=~/datasets/cifar10-32x32.zip {options} '
                                f'--dry-run')
        gpus = int(options.split('--gpus=')[1].split()[0])
        batch = int(options.split('--batch=')[1].split()[0])
        assert f'Number of processes: {gpus}' in result.stdout and f'Batch size:          {batch} images' in result.stdout


def test_our_readme_usage_commands(home):
    """The Usage commands of this project's README.md, on a fresh working folder: the networks they name are tiny
    stand-ins, the datasets are made by the first command. Sizes changed: the dataset resolutions (32 and 16
    instead of 512 and 256), the metrics' sample counts and the projection's steps, and the frames projected with
    --target-dataset are those of afhqcat-512x512.zip (the README names a video's); the training commands are
    checked with --dry-run; the visualizer lines are covered by tests/test_visualizer.py."""
    import PIL.Image
    import torch

    import creps_networks
    from training import networks_stylegan3
    work = home / 'readme'
    work.mkdir()
    torch.manual_seed(0)
    G3 = networks_stylegan3.Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=32, img_channels=3, channel_base=128,
                                      channel_max=16, num_layers=6, mapping_kwargs=dict(num_layers=1)).eval()
    for name, G in (('network-snapshot-005000.pkl', G3), ('stylegan3-r.pkl', G3),
                    ('creps-snapshot.pkl', creps_networks.tiny_generator(img_resolution=16))):
        with open(work / name, 'wb') as f:
            pickle.dump(dict(G=G, D=None, G_ema=G, augment_pipe=None, training_set_kwargs=None), f)
    _inception, vgg16 = write_standin_detectors(work)
    vgg16_cache = dnnlib.util.url_cache_path(metric_utils.VGG16_URL, cache_dir=str(home / 'cache' / 'downloads'))
    if not os.path.exists(vgg16_cache):
        os.link(vgg16, vgg16_cache)
    cats = home / 'home' / 'downloads' / 'afhq' / 'train' / 'cat'
    cats.mkdir(parents=True)
    rnd = np.random.RandomState(0)
    for idx in range(12):
        PIL.Image.fromarray((rnd.rand(48, 48, 3) * 255).astype(np.uint8)).save(cats / f'cat{idx}.png')
    PIL.Image.fromarray((rnd.rand(32, 32, 3) * 255).astype(np.uint8)).save(work / 'cat.png')
    run = lambda command: official(home, command, cwd=str(work))

    run('python dataset_tool.py --source=~/downloads/afhq/train/cat --dest=~/datasets/afhqcat-512x512.zip --resolution=32x32')
    run('python dataset_tool.py --source=~/downloads/afhq/train/cat --dest=~/datasets/ffhq-256x256.zip --resolution=16x16')
    run('python train.py --outdir=training-runs --cfg=stylegan3-t --data=~/datasets/afhqcat-512x512.zip '
        '--gpus=8 --batch=32 --gamma=8.2 --mirror=1 --dry-run')
    run('python train.py --outdir=training-runs --cfg=creps --data=~/datasets/ffhq-256x256.zip --gpus=8 --batch=32 '
        '--gamma=10 --mirror=1 --aug=noaug --dry-run')
    run('python gen_images.py --network=creps-snapshot.pkl --seeds=0-7 --scale=2 --outdir=out')
    assert PIL.Image.open(work / 'out' / 'seed0007.png').size == (32, 32)
    run('python calc_metrics.py --metrics=fid200_full --scale=2 --network=creps-snapshot.pkl --data=~/datasets/ffhq-256x256.zip')

    run('python gen_images.py --network=network-snapshot-005000.pkl --seeds=0-7 --trunc=0.7 --outdir=out')
    run('python gen_images.py --network=network-snapshot-005000.pkl --seeds=0-5 --trunc=0.5,0.7,1 --grid --outdir=out')
    run('python gen_images.py --network=network-snapshot-005000.pkl --seeds=0-4 --mix-seeds=10-14 --mix-layers=0-3 --outdir=out')
    run('python style_mixing.py --network=network-snapshot-005000.pkl --rows=85,100,75 --cols=55,821,1789 --styles=0-6 --outdir=out')
    run('python gen_images.py --network=stylegan3-r.pkl --seeds=3 --translate=0.2,0.1 --rotate=30 --outdir=out')
    run('python gen_video.py --network=network-snapshot-005000.pkl --seeds=0-31 --grid=4x2 --output=lerp.mp4')
    for name in ('trunc-grid.png', 'mix-grid.png', 'grid.png', '85-55.png', 'seed0003.png'):
        assert (work / 'out' / name).is_file(), name

    run('python calc_metrics.py --metrics=fid200_full,eqt200_int --network=network-snapshot-005000.pkl '
        '--data=~/datasets/afhqcat-512x512.zip')
    run('python export_weights.py --network=network-snapshot-005000.pkl --dest=network-snapshot-005000.safetensors')
    run('python gen_images.py --network=network-snapshot-005000.safetensors --seeds=0-7 --outdir=out')
    run('python avg_spectra.py calc --source=~/datasets/afhqcat-512x512.zip --dest=tmp/training-data.npz --mean=112.684 --std=69.509')
    run('python avg_spectra.py heatmap tmp/training-data.npz --save=tmp/heatmap.png')
    run('python projector.py --network=network-snapshot-005000.pkl --target=cat.png --outdir=proj --save-video=1 --num-steps=20')
    for name in ('proj.mp4', 'target.png', 'proj.png', 'projected_w.npz'):
        assert (work / 'proj' / name).is_file(), name
    run('python projector.py --network=network-snapshot-005000.pkl --target-dataset=~/datasets/afhqcat-512x512.zip '
        '--outdir=proj --batch=8 --num-steps=4 --warm-steps=2')
    with np.load(work / 'proj' / 'latents.npz') as latents:
        assert latents['w'].shape == (12, G3.num_ws, G3.w_dim) and len(latents['fnames']) == 12


def test_legacy_help_command(home):
    """The example of the official legacy.py's help text: a TensorFlow StyleGAN2 pickle (a tiny stand-in of that
    format in the download cache) converted, then used as the README uses pickles."""
    import tf_pickles
    url = 'https://nvlabs-fi-cdn.nvidia.com/stylegan2/networks/stylegan2-cat-config-f.pkl'
    cached = dnnlib.util.url_cache_path(url, cache_dir=str(home / 'cache' / 'downloads'))
    tf_pickles.write_pickle(cached, tf_pickles.make_states(seed=1, resolution=16, flavour='sg2'))
    work = home / 'legacy'
    work.mkdir()
    run = lambda command: official(home, command, cwd=str(work))
    run(f'python legacy.py \\\n    --source={url} \\\n    --dest=stylegan2-cat-config-f.pkl')
    run('python gen_images.py --outdir=out --trunc=1 --seeds=2 --network=stylegan2-cat-config-f.pkl')
    run(f'python gen_images.py --outdir=out-tf --trunc=1 --seeds=2 --network={url}')
    assert (work / 'out' / 'seed0002.png').read_bytes() == (work / 'out-tf' / 'seed0002.png').read_bytes()


NGC_SG2 = 'https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan2/versions/1/files'

# The lines of the official docs/configs.md that fine-tune a published pickle.
CONFIGS_MD_RESUME_OPTIONS = [
    f'--cfg=stylegan2 --gpus=8 --batch=32 --gamma=10 --mirror=1 --kimg=5000 --snap=10 --resume={NGC_SG2}/stylegan2-ffhqu-1024x1024.pkl',
    f'--cfg=stylegan3-t --gpus=8 --batch=32 --gamma=16.4 --mirror=1 --kimg=5000 --snap=10 --resume={NGC}/stylegan3-t-ffhqu-1024x1024.pkl',
    f'--cfg=stylegan3-r --gpus=8 --batch=32 --gamma=6.6 --mirror=1 --kimg=5000 --snap=10 --resume={NGC}/stylegan3-r-ffhqu-1024x1024.pkl',
    f'--cfg=stylegan2 --gpus=8 --batch=32 --gamma=5 --mirror=1 --kimg=5000 --snap=10 --resume={NGC_SG2}/stylegan2-ffhq-1024x1024.pkl',
    f'--cfg=stylegan3-t --gpus=8 --batch=32 --gamma=6.6 --mirror=1 --kimg=5000 --snap=10 --resume={NGC}/stylegan3-t-ffhq-1024x1024.pkl',
    f'--cfg=stylegan3-r --gpus=8 --batch=32 --gamma=3.3 --mirror=1 --kimg=5000 --snap=10 --resume={NGC}/stylegan3-r-ffhq-1024x1024.pkl',
]

# The examples of the official docs/train-help.txt and docs/dataset-tool-help.txt.
TRAIN_HELP_COMMANDS = [
    'python train.py --outdir=~/training-runs --cfg=stylegan3-t --data=~/datasets/afhqv2-512x512.zip \\\n'
    '    --gpus=8 --batch=32 --gamma=8.2 --mirror=1',
    'python train.py --outdir=~/training-runs --cfg=stylegan3-r --data=~/datasets/metfacesu-1024x1024.zip \\\n'
    '    --gpus=8 --batch=32 --gamma=6.6 --mirror=1 --kimg=5000 --snap=5 \\\n'
    f'    --resume={NGC}/stylegan3-r-ffhqu-1024x1024.pkl',
    'python train.py --outdir=~/training-runs --cfg=stylegan2 --data=~/datasets/ffhq-1024x1024.zip \\\n'
    '    --gpus=8 --batch=32 --gamma=10 --mirror=1 --aug=noaug',
]
DATASET_TOOL_HELP_COMMAND = ('python dataset_tool.py --source LSUN/raw/cat_lmdb --dest /tmp/lsun_cat \\\n'
                             '    --transform=center-crop-wide --resolution=512x384')


def _resume_standins(home, dataset):
    """Networks of each configuration's architecture at the stand-in dataset's resolution, in the download cache
    under the published pickles' URLs: built from the options train.py prints for that configuration."""
    import copy
    import json
    urls = {}
    for line in CONFIGS_MD_RESUME_OPTIONS:
        urls.setdefault(line.split()[0].split('=')[1], []).append(line.split('--resume=')[1])
    downloads = home / 'cache' / 'downloads'
    for cfg, cfg_urls in urls.items():
        result = official(home, f'python train.py --outdir=~/training-runs --cfg={cfg} --data={dataset} --gpus=8 '
                                f'--batch=32 --gamma=1 --dry-run')
        options = json.loads(result.stdout.split('Training options:')[1].split('\n\n')[0])
        common = dict(c_dim=0, img_resolution=32, img_channels=3)
        G = dnnlib.util.construct_class_by_name(**options['G_kwargs'], **common).eval().requires_grad_(False)
        D = dnnlib.util.construct_class_by_name(**options['D_kwargs'], **common).eval().requires_grad_(False)
        standin = home / f'standin-{cfg}.pkl'
        with open(standin, 'wb') as f:
            pickle.dump(dict(G=G, D=D, G_ema=copy.deepcopy(G), augment_pipe=None, training_set_kwargs=None), f)
        for url in cfg_urls:
            os.link(standin, dnnlib.util.url_cache_path(url, cache_dir=str(downloads)))


def test_configs_md_resume_lines_and_help_text_examples(home):
    """The fine-tuning lines of docs/configs.md and the train.py examples of docs/train-help.txt, checked with
    --dry-run (which loads the --resume pickle and checks that it fits); the datasets they name are the CIFAR-10
    stand-in (32x32) under those names. The dataset_tool.py example of docs/dataset-tool-help.txt runs on a small
    LSUN-layout LMDB database, writing to a folder of the test instead of /tmp."""
    import io
    import shutil

    import PIL.Image
    # A home and download cache of their own: the published names here hold full-width stand-ins.
    root = home / 'fine-tuning'
    datasets = root / 'home' / 'datasets'
    datasets.mkdir(parents=True)
    (root / 'cache' / 'downloads').mkdir(parents=True)
    official(root, f'python dataset_tool.py --source={home}/cifar-10-python.tar.gz --dest=~/datasets/cifar10-32x32.zip')
    cifar = datasets / 'cifar10-32x32.zip'
    for name in ('afhqv2-512x512.zip', 'metfacesu-1024x1024.zip', 'ffhq-1024x1024.zip'):
        shutil.copyfile(cifar, datasets / name)
    _resume_standins(root, cifar)

    for options in CONFIGS_MD_RESUME_OPTIONS:
        result = official(root, f'python train.py --outdir=~/training-runs --data=~/datasets/metfacesu-1024x1024.zip '
                                f'{options} --dry-run')
        assert '"resume_pkl": "' + options.split('--resume=')[1] + '"' in result.stdout
    for command in TRAIN_HELP_COMMANDS:
        official(root, command + ' --dry-run')
    assert not (root / 'home' / 'training-runs').exists() or not os.listdir(root / 'home' / 'training-runs')

    lmdb = pytest.importorskip('lmdb')
    work = home / 'lsun'
    (work / 'LSUN' / 'raw').mkdir(parents=True)
    rnd = np.random.RandomState(1)
    with lmdb.open(str(work / 'LSUN' / 'raw' / 'cat_lmdb'), map_size=1 << 24) as env, env.begin(write=True) as txn:
        for idx in range(3):
            buffer = io.BytesIO()
            PIL.Image.fromarray((rnd.rand(480, 640, 3) * 255).astype(np.uint8)).save(buffer, format="webp")  # LSUN: at least 512x384.
            txn.put(f'{idx:040x}'.encode(), buffer.getvalue())
    official(home, DATASET_TOOL_HELP_COMMAND.replace('/tmp/lsun_cat', str(work / 'lsun_cat')), cwd=str(work))
    written = sorted((work / 'lsun_cat').rglob('*.png'))
    assert len(written) == 3 and PIL.Image.open(written[0]).size == (512, 512)  # 512x384 letterboxed into 512x512.
