"""The text-to-image metrics of StyleGAN-T (zero-shot COCO FID, CLIP score) on a tiny StyleGAN-T generator, with a
CLIP scorer trained here to tell colours apart and the stand-in Inception: names, scoring, end-to-end runs of
calc_metrics.py checked against direct computations, one process against two, streaming training sets, and the
one-line refusals."""

import io
import json
import os
import shutil
import zipfile

import numpy as np
import PIL.Image
import pytest
import torch

import clip_scorer_standin
import shard_fixtures
import stylegan_t_networks
from helpers import run_python
from metric_standins import write_standin_detectors

pytest.importorskip('open_clip')

COLOURS = list(clip_scorer_standin.COLOURS)


def _write_caption_zip(path, images, captions):
    """A dataset zip as dataset_tool.py writes one: PNGs and dataset.json with a caption per image."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with zipfile.ZipFile(path, 'w') as zf:
        labels = []
        for idx, (image, caption) in enumerate(zip(images, captions)):
            name = f'00000/img{idx:08d}.png'
            buffer = io.BytesIO()
            PIL.Image.fromarray(image).save(buffer, format='png')
            zf.writestr(name, buffer.getvalue())
            labels.append([name, caption])
        zf.writestr('dataset.json', json.dumps({'labels': labels}))
    return str(path)


def _colour_squares(count, size, seed):
    """(uint8 [count, size, size, 3] noisy squares of a colour on noise, their captions naming the colour)."""
    rng = np.random.RandomState(seed)
    images, captions = [], []
    for idx in range(count):
        name = COLOURS[idx % len(COLOURS)]
        image = rng.randint(0, 256, size=(size, size, 3))
        top, left = rng.randint(0, size // 2, size=2)
        image[top:top + size // 2, left:left + size // 2] = clip_scorer_standin.COLOURS[name]
        images.append(image.astype(np.uint8))
        captions.append(f'a {name} square')
    return np.stack(images), captions


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp('text_metrics')
    inception, _vgg = write_standin_detectors(root)
    images, captions = _colour_squares(16, 32, seed=0)
    train_zip = _write_caption_zip(root / 'data' / 'train.zip', images, captions)
    coco_images, coco_captions = _colour_squares(24, 128, seed=1)  # Resized to 64 by the coco64 metric.
    coco_zip = _write_caption_zip(root / 'data' / 'coco_val256.zip', coco_images, coco_captions)
    return dict(root=root, inception=str(inception), train_zip=train_zip, coco_zip=coco_zip,
                scorer=clip_scorer_standin.build(root / 'scorer'), pkl=stylegan_t_networks.text_network(tmp_path_factory))


def _calc(workspace, *args, env=None):
    cmd = ['calc_metrics.py', f'--network={workspace["pkl"]}', f'--inception={workspace["inception"]}', '--workers=0']
    env = dict(dict(COCOPATH='', STYLEGAN_CLIP_SCORER=''), DNNLIB_CACHE_DIR=str(workspace['root'] / 'cache'), **(env or {}))
    return run_python(cmd + [str(arg) for arg in args], env=env)


def _results(result):
    """{result name: value} of the JSON lines calc_metrics.py printed."""
    assert result.returncode == 0, result.stderr
    values = {}
    for line in result.stdout.splitlines():
        if line.startswith('{"results"'):
            values.update(json.loads(line)['results'])
    return values


def _one_error_line(result, *fragments):
    errors = [line for line in result.stderr.splitlines() if line.startswith('Error:')]
    assert result.returncode != 0 and 'Traceback' not in result.stderr, result.stderr
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def _generated(G, captions):
    """The metrics' images: item i from latent i and prompt i."""
    from metrics import metric_utils
    from training import encoders
    z = torch.from_numpy(metric_utils.sample_latents(range(len(captions)), G.z_dim, seed=0))
    with torch.no_grad():
        return metric_utils.make_images_uint8(G(z, encoders.encode_prompts(G, captions)))


def _random_captions(path, count):
    from training.dataset import ImageFolderDataset
    return ImageFolderDataset(path=path, use_labels=True).random_captions(count, 0)

# ----------------------------------------------------------------------------


def test_names_are_registered_and_listed():
    from metrics import metric_main, metric_utils
    listed = metric_main.list_valid_metrics()
    assert listed[-4:] == ['fid30k_coco64', 'fid30k_coco256', 'cs10k', 'cs10k_coco']
    for name in ('fid100_coco64', 'fid2k_coco256', 'cs20', 'cs20_coco', 'cs10k'):
        assert metric_main.is_valid_metric(name), name
    for name in ('cs20_full', 'kid20_coco64', 'fid20_coco', 'cs20_coco64', 'is20_coco', 'cs0', 'fid20_coco128'):
        assert not metric_main.is_valid_metric(name), name
    assert metric_main.detectors_needed('fid30k_coco256') == [metric_utils.INCEPTION_URL]
    assert metric_main.detectors_needed('cs10k') == []
    assert metric_main.needs_clip_scorer('cs10k_coco') and not metric_main.needs_clip_scorer('fid30k_coco64')
    assert metric_main.needs_coco('cs10k_coco') and metric_main.needs_coco('fid1k_coco64') and not metric_main.needs_coco('cs10k')
    assert metric_main.reads_dataset('cs10k') and not metric_main.reads_dataset('cs10k_coco')
    assert not metric_main.reads_dataset('fid30k_coco64') and metric_main.reads_dataset('fid50k_full')
    help_text = run_python(['calc_metrics.py', '--help']).stdout
    for name in ('fid30k_coco64', 'fid30k_coco256', 'cs10k', 'cs10k_coco', '--clip-scorer', 'STYLEGAN_CLIP_SCORER',
                 'COCOPATH', 'ViT-g-14:laion2b_s12b_b42k'):
        assert name in help_text, name


def test_clip_score_prefers_matching_captions(workspace):
    from metrics import clip_score
    scorer = clip_score.load_scorer(workspace['scorer'])
    assert clip_score.load_scorer(workspace['scorer']) is scorer  # Loaded once per process and device.
    names = COLOURS * 2
    images = clip_scorer_standin.colour_images(names, size=48, seed=123)  # Resized to the scorer's 32 pixels.
    matching = [f'a photo of a {name} thing' for name in names]
    shuffled = [f'a photo of a {names[(idx + 1) % len(names)]} thing' for idx in range(len(names))]
    score = clip_score.clip_score(scorer, [images[:5], images[5:]], matching)
    assert score > 0.8 and score > clip_score.clip_score(scorer, [images], shuffled) + 0.5
    per_image = clip_score.similarities(scorer, images, matching)
    assert per_image.shape == (len(names),) and score == pytest.approx(float(per_image.double().mean()), abs=1e-6)
    with pytest.raises(AssertionError):
        clip_score.clip_score(scorer, [images], matching[:-1])


def test_scorer_choice_and_refusals(workspace, tmp_path, monkeypatch):
    from metrics import clip_score, metric_utils
    monkeypatch.delenv(clip_score.SCORER_ENV, raising=False)
    assert clip_score.choose_scorer() == 'ViT-g-14:laion2b_s12b_b42k'
    monkeypatch.setenv(clip_score.SCORER_ENV, workspace['scorer'])
    assert clip_score.choose_scorer() == workspace['scorer'] and clip_score.choose_scorer('ViT-B-32:openai') == 'ViT-B-32:openai'
    assert clip_score.parse_scorer('ViT-g-14:laion2b_s12b_b42k') == ('pretrained', 'ViT-g-14', 'laion2b_s12b_b42k')
    assert clip_score.parse_scorer(f'local-dir:{workspace["scorer"]}') == ('folder', workspace['scorer'])
    assert clip_score.check_scorer() == workspace['scorer']  # Loads it once on the CPU.

    empty = tmp_path / 'empty'
    empty.mkdir()
    (tmp_path / 'no-weights').mkdir()
    shutil.copy(os.path.join(workspace['scorer'], 'open_clip_config.json'), tmp_path / 'no-weights')
    for spec, message in [('ViT-g-14:nonsense', 'laion2b_s12b_b42k'), ('NoSuchModel:tag', 'no model'),
                          (str(tmp_path / 'missing'), 'no such folder'), ('ViT-g-14', 'neither a folder nor MODEL:TAG'),
                          (str(empty), 'open_clip_config.json'), (str(tmp_path / 'no-weights'), 'holds no weights')]:
        with pytest.raises(metric_utils.MetricError, match=message) as err:
            clip_score.check_scorer(spec)
        assert '\n' not in str(err.value)

    # The release's weights, offline and not in the cache: one line saying how to bring them.
    import huggingface_hub.constants
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_OFFLINE', True)  # Read at import: set it directly.
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_CACHE', str(tmp_path / 'hf'))
    monkeypatch.delenv(clip_score.SCORER_ENV)
    with pytest.raises(metric_utils.MetricError) as err:
        clip_score.check_scorer()
    message = str(err.value)
    assert '\n' not in message and '--clip-scorer' in message and 'STYLEGAN_CLIP_SCORER' in message
    assert 'laion/CLIP-ViT-g-14-laion2B-s12B-b42K' in message


def _expected_clip_score(workspace, source, count):
    """The CLIP score computed here: prompts drawn from `source` with seed 0, item i from latent i and prompt i."""
    from metrics import clip_score
    captions = _random_captions(source, count)
    G = stylegan_t_networks.load_generator(workspace['pkl'])
    return clip_score.clip_score(clip_score.load_scorer(workspace['scorer']), [_generated(G, captions)], captions)


def test_clip_score_end_to_end_matches_direct_computation(workspace):
    """cs20 (training captions) and cs20_coco (COCO captions) through calc_metrics.py equal the score computed here
    from the same prompts and latents."""
    one = _calc(workspace, f'--data={workspace["train_zip"]}', '--metrics=cs20,cs20_coco',
                f'--clip-scorer={workspace["scorer"]}')
    values = _results(one)
    assert f'CLIP scorer: {workspace["scorer"]}' in one.stdout
    for name, source in (('cs20', workspace['train_zip']), ('cs20_coco', workspace['coco_zip'])):
        expected = _expected_clip_score(workspace, source, 20)
        assert -1 <= values[name] <= 1 and values[name] == pytest.approx(expected, rel=1e-4, abs=1e-5)


@pytest.mark.slow
def test_two_processes_give_the_values_of_one(workspace):
    """Items are split over processes by index; prompts and latents follow the index, so the values do not move.
    (The scorer comes from STYLEGAN_CLIP_SCORER here.)"""
    two = _calc(workspace, f'--data={workspace["train_zip"]}', '--metrics=cs20,fid20_coco64', '--gpus=2',
                env=dict(STYLEGAN_CLIP_SCORER=workspace['scorer']))
    values = _results(two)
    assert values['cs20'] == pytest.approx(_expected_clip_score(workspace, workspace['train_zip'], 20), rel=1e-4, abs=1e-5)
    one = _calc(workspace, f'--data={workspace["train_zip"]}', '--metrics=fid20_coco64')
    assert values['fid20_coco64'] == pytest.approx(_results(one)['fid20_coco64'], rel=1e-4)
    assert 'dataset features' not in one.stdout  # The COCO statistics are cached like any dataset's.


def test_zero_shot_fid_end_to_end_matches_direct_computation(workspace, tmp_path):
    """fid20_coco64 against the COCO zip beside the data: reals resized 128 -> 64 and the 32-pixel images from COCO
    captions resized 32 -> 64 (Lanczos); COCOPATH finds a copy elsewhere and gives the same value."""
    from metrics import frechet_inception_distance, metric_utils
    beside = _calc(workspace, f'--data={workspace["train_zip"]}', '--metrics=fid20_coco64')
    fid = _results(beside)['fid20_coco64']
    assert f'COCO val images and captions: {workspace["coco_zip"]}' in beside.stdout

    G = stylegan_t_networks.load_generator(workspace['pkl'])
    detector = torch.jit.load(workspace['inception'])
    with zipfile.ZipFile(workspace['coco_zip']) as zf:
        reals = np.stack([np.asarray(PIL.Image.open(io.BytesIO(zf.read(name))).resize((64, 64), PIL.Image.Resampling.LANCZOS))
                          for name in sorted(zf.namelist()) if name.endswith('.png')])
    fakes = metric_utils.resize_images(_generated(G, _random_captions(workspace['coco_zip'], 20)), 64)
    assert fakes.shape == (20, 3, 64, 64)
    with torch.no_grad():
        features = [detector(images, return_features=True).numpy().astype(np.float64)
                    for images in (fakes, torch.from_numpy(reals).permute(0, 3, 1, 2).contiguous())]
    stats = [(f.mean(0), np.cov(f, rowvar=False, bias=True)) for f in features]
    assert fid == pytest.approx(frechet_inception_distance.frechet_distance(*stats[0], *stats[1]), rel=1e-3)

    elsewhere = tmp_path / 'elsewhere' / 'my-coco.zip'
    os.makedirs(elsewhere.parent)
    shutil.copy(workspace['coco_zip'], elsewhere)
    lonely = tmp_path / 'lonely' / 'train.zip'
    os.makedirs(lonely.parent)
    shutil.copy(workspace['train_zip'], lonely)
    via_env = _calc(workspace, f'--data={lonely}', '--metrics=fid20_coco64', env=dict(COCOPATH=str(elsewhere)))
    assert _results(via_env)['fid20_coco64'] == pytest.approx(fid, rel=1e-6)
    assert f'COCO val images and captions: {elsewhere}' in via_env.stdout


def test_missing_inputs_fail_in_one_line(workspace, tmp_path):
    lonely = tmp_path / 'train.zip'
    shutil.copy(workspace['train_zip'], lonely)
    missing = _calc(workspace, f'--data={lonely}', '--metrics=fid20_coco64')
    _one_error_line(missing, 'coco_val256.zip', 'dataset_tool.py', 'captions_val2014.json', 'COCOPATH', str(tmp_path))
    bad_env = _calc(workspace, f'--data={lonely}', '--metrics=cs20_coco', env=dict(COCOPATH=str(tmp_path / 'nope.zip')))
    _one_error_line(bad_env, 'COCOPATH', 'no such file')

    damaged = tmp_path / 'damaged-scorer'
    damaged.mkdir()
    shutil.copy(os.path.join(workspace['scorer'], 'open_clip_config.json'), damaged)
    (damaged / 'open_clip_pytorch_model.bin').write_bytes(b'not a checkpoint' * 8)
    for spec, fragment in [(damaged, 'cannot load the CLIP scorer'), ('ViT-g-14:nonsense', 'no weights')]:
        result = _calc(workspace, f'--data={lonely}', '--metrics=cs20', f'--clip-scorer={spec}')
        _one_error_line(result, fragment, '--clip-scorer')


def test_streaming_training_set(workspace, tmp_path):
    """A training run on tar shards: cs draws its prompts from the shards, the COCO zip is found inside the shard
    folder, and the metrics that read the training images are refused in one line."""
    shards = tmp_path / 'shards'
    shard_fixtures.build(shards, num_shards=2, per_shard=5, corrupt=None, unfinished=False)
    shutil.copy(workspace['coco_zip'], shards / 'coco_val256.zip')
    run_dir = tmp_path / '00000-run'
    run_dir.mkdir()
    shutil.copy(workspace['pkl'], run_dir / 'network-snapshot-000000.pkl')
    kwargs = dict(class_name='training.dataset.ShardDataset', path=str(shards), resolution=32, use_labels=True,
                  xflip=False, random_seed=0)
    (run_dir / 'training_options.json').write_text(json.dumps(dict(training_set_kwargs=kwargs)))
    snapshot = f'--network={run_dir / "network-snapshot-000000.pkl"}'

    result = run_python(['calc_metrics.py', snapshot, f'--inception={workspace["inception"]}', '--workers=0',
                         '--metrics=cs20,fid20_coco64', f'--clip-scorer={workspace["scorer"]}'],
                        env=dict(COCOPATH='', DNNLIB_CACHE_DIR=str(workspace['root'] / 'cache')))
    values = _results(result)
    assert -1 <= values['cs20'] <= 1 and np.isfinite(values['fid20_coco64'])
    assert {p.name for p in run_dir.glob('metric-*.jsonl')} == {'metric-cs20.jsonl', 'metric-fid20_coco64.jsonl'}

    from training.dataset import ShardDataset
    captions = ShardDataset(**{k: v for k, v in kwargs.items() if k != 'class_name'}).random_captions(20, 0)
    from metrics import clip_score
    G = stylegan_t_networks.load_generator(workspace['pkl'])
    expected = clip_score.clip_score(clip_score.load_scorer(workspace['scorer']), [_generated(G, captions)], captions)
    assert values['cs20'] == pytest.approx(expected, rel=1e-4, abs=1e-5)

    refused = run_python(['calc_metrics.py', snapshot, f'--inception={workspace["inception"]}', '--workers=0',
                          '--metrics=cs20,fid20'], env=dict(DNNLIB_CACHE_DIR=str(workspace['root'] / 'cache')))
    _one_error_line(refused, 'fid20', 'tar shards', 'fid30k_coco64')
    from metrics import metric_main, metric_utils
    for metric in ('kid20_full', 'pr20k3', 'is20'):
        with pytest.raises(metric_utils.MetricError, match='tar shards'):
            metric_main.check_inputs([metric], kwargs)
        with pytest.raises(metric_utils.MetricError, match='tar shards'):  # Also when called without the check.
            metric_main.calc_metric(metric, G=G, dataset_kwargs=kwargs, device=torch.device('cpu'))
    assert metric_main.check_inputs(['fid20_coco64'], kwargs).coco_zip == str(shards / 'coco_val256.zip')


def test_text_metrics_refuse_other_generators(workspace, tmp_path):
    from metrics import metric_main, metric_utils
    from tool_networks import tiny_generator
    common = dict(dataset_kwargs=dict(class_name='training.dataset.ImageFolderDataset', path=workspace['train_zip'],
                                      use_labels=True), clip_scorer=workspace['scorer'], device=torch.device('cpu'))
    with pytest.raises(metric_utils.MetricError, match='text-to-image generator'):
        metric_main.calc_metric('cs4', G=tiny_generator(), **common)
    with pytest.raises(metric_utils.MetricError, match='class labels'):  # Prompts cannot condition class labels.
        metric_utils.caption_labels([0], ['a red square'], tiny_generator(c_dim=3), torch.device('cpu'))
    uncaptioned = tmp_path / 'plain.zip'
    with zipfile.ZipFile(uncaptioned, 'w') as zf, zipfile.ZipFile(workspace['train_zip']) as source:
        for name in source.namelist():
            if name.endswith('.png'):
                zf.writestr(name, source.read(name))
    G = stylegan_t_networks.load_generator(workspace['pkl'])
    with pytest.raises(metric_utils.MetricError, match='draws its prompts from captions') as err:
        metric_main.calc_metric('cs4', G=G, **dict(common, dataset_kwargs=dict(common['dataset_kwargs'], path=str(uncaptioned))))
    assert '\n' not in str(err.value)
