"""End-to-end tests of dataset_tool.py on webdataset tar shards (img2dataset's layout) and on COCO 2014 val,
the two captioned sources of text-to-image evaluation: run as a subprocess, the written zip read back."""

import io
import json
import os
import re
import tarfile
import zipfile

import numpy as np
import PIL.Image
import pytest

import shard_fixtures
from helpers import run_python

RESOLUTION = 16  # Small: the fixtures' images are 24x20, so centre cropping and resizing both happen.


def _run_tool(*args):
    return run_python(['dataset_tool.py'] + [str(arg) for arg in args], timeout=120)


def _to_zip(source, dest, *args):
    return _run_tool('--source', source, '--dest', dest, f'--resolution={RESOLUTION}x{RESOLUTION}',
        '--transform=center-crop', *args)


def _read_zip(dest):
    """({fname: HWC uint8 image}, dataset.json labels) of a written zip."""
    with zipfile.ZipFile(dest) as archive:
        images = {name: np.asarray(PIL.Image.open(io.BytesIO(archive.read(name))))
                  for name in archive.namelist() if name.endswith('.png')}
        labels = json.loads(archive.read('dataset.json'))['labels']
    assert sorted(images) == sorted(fname for fname, _caption in labels)
    return images, labels


def _fname(idx):
    return f'{idx // 1000:05d}/img{idx:08d}.png'


def _source_colour(folder, sample_id):
    """Mean RGB of a sample's image as stored in its shard; sample_id is 'source/NNNNN.tar/KEY' (the fixtures')."""
    shard, key = sample_id.rsplit('/', 1)
    with tarfile.open(os.path.join(folder, shard)) as tar:
        member = next(m for m in tar.getmembers() if m.name.startswith(key + '.') and not m.name.endswith(('.txt',
            '.json')))
        image = PIL.Image.open(io.BytesIO(tar.extractfile(member).read())).convert('RGB')
    return np.asarray(image).reshape(-1, 3).mean(axis=0)


def _assert_refused(result, pattern, dest):
    """One-line error (no traceback) as the last line of stderr, non-zero exit, nothing left at or beside dest."""
    assert result.returncode != 0
    assert 'Traceback' not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith('Error: ') and re.search(pattern, last), result.stderr
    assert not os.path.exists(dest)
    assert [entry for entry in os.listdir(os.path.dirname(dest)) if '.tmp' in entry] == []

# ----------------------------------------------------------------------------
# Shards.


def test_finished_shards_become_a_captioned_zip_that_training_reads(tmp_path):
    fixture = shard_fixtures.build(tmp_path / 'shards', corrupt=())
    result = _to_zip(tmp_path / 'shards', tmp_path / 'out.zip')
    assert result.returncode == 0, result.stderr
    assert f"Wrote 24 {RESOLUTION}x{RESOLUTION} RGB images" in result.stdout
    assert re.search(r"Leaving out 1 unfinished shard\(s\)", result.stderr), result.stderr

    # Finished shards in sorted order (cc3m/00000, cc3m/00002, laion/00001, laion/00003), each image with its
    # own caption; nothing of the unfinished shard 00004.
    ids = sorted(fixture['good'])
    images, labels = _read_zip(tmp_path / 'out.zip')
    assert labels == [[_fname(idx), fixture['good'][sample_id]] for idx, sample_id in enumerate(ids)]
    assert not any(caption.startswith('sample 4-') for _name, caption in labels)
    for idx, sample_id in enumerate(ids):
        image = images[_fname(idx)]
        assert image.shape == (RESOLUTION, RESOLUTION, 3)
        np.testing.assert_allclose(image.reshape(-1, 3).mean(axis=0), _source_colour(tmp_path / 'shards', sample_id),
            atol=3)  # One colour per image: the right image sits beside each caption.

    from training.dataset import ImageFolderDataset  # Imports torch: only once the tool has run.
    dataset = ImageFolderDataset(str(tmp_path / 'out.zip'), use_labels=True)
    assert len(dataset) == 24 and dataset.get_label(5) == fixture['good'][ids[5]]


def test_corrupt_image_stops_the_tool_unless_skip_corrupt(tmp_path):
    fixture = shard_fixtures.build(tmp_path / 'shards', unfinished=False)
    (corrupt_id,) = fixture['corrupt']
    corrupt_name = os.path.join(tmp_path, 'shards', corrupt_id)
    result = _to_zip(tmp_path / 'shards', tmp_path / 'out.zip')
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    _assert_refused(result, "cannot read image '" + re.escape(corrupt_name) + "': .*--skip-corrupt", tmp_path / 'out.zip')

    result = _to_zip(tmp_path / 'shards', tmp_path / 'out.zip', '--skip-corrupt')
    assert result.returncode == 0, result.stderr
    assert 'skipped 1 corrupt' in result.stdout and f"'{corrupt_name}'" in result.stderr
    _images, labels = _read_zip(tmp_path / 'out.zip')
    assert [caption for _name, caption in labels] == [fixture['good'][key] for key in sorted(fixture['good'])]


def test_uncaptioned_or_imageless_samples_are_corrupt(tmp_path):
    shard = tmp_path / 'shards' / '00000.tar'
    image = shard_fixtures.image_bytes((200, 30, 30))
    shard_fixtures.write_shard(str(shard), [dict(key='a', caption='a red square', image=image),
        dict(key='b', caption=None, image=image), dict(key='c', caption='no picture', image=None),
        dict(key='d', caption=' \n ', image=image), dict(key='e', caption='line\nbreak', image=image)])
    result = _to_zip(tmp_path / 'shards', tmp_path / 'out.zip')
    _assert_refused(result, f"sample '{re.escape(os.path.join(shard, 'b'))}': no .txt caption .*--skip-corrupt",
        tmp_path / 'out.zip')

    result = _to_zip(tmp_path / 'shards', tmp_path / 'out.zip', '--skip-corrupt')
    assert result.returncode == 0, result.stderr
    assert 'skipped 3 corrupt' in result.stdout
    assert 'no .jpg, .png or .webp image' in result.stderr and 'caption is empty' in result.stderr
    _images, labels = _read_zip(tmp_path / 'out.zip')
    assert labels == [[_fname(0), 'a red square'], [_fname(4), 'line break']]  # Captions as .txt files give them.


def _cut_inside_a_file(path):
    return os.path.getsize(path) // 2


def _cut_before_a_header(path):
    with tarfile.open(path) as tar:
        return tar.getmembers()[6].offset  # The first file of the third sample: tar reads it as the end.


@pytest.mark.parametrize('cut, pattern', [
    (_cut_inside_a_file, r"is damaged after \d+ sample\(s\) \(unexpected end of data\)"),
    (_cut_before_a_header, r"ends after 2 of the 6 samples its _stats\.json counts; the tar is truncated"),
], ids=['read-error', 'silent-end'])
def test_damaged_tar_stops_the_tool_unless_skip_corrupt(tmp_path, cut, pattern):
    fixture = shard_fixtures.build(tmp_path / 'shards', corrupt=(), unfinished=False)
    damaged = tmp_path / 'shards' / 'cc3m' / '00002.tar'
    damaged.write_bytes(damaged.read_bytes()[:cut(damaged)])
    result = _to_zip(tmp_path / 'shards', tmp_path / 'out.zip')
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    _assert_refused(result, f"shard '{re.escape(str(damaged))}' {pattern} .*--skip-corrupt", tmp_path / 'out.zip')

    result = _to_zip(tmp_path / 'shards', tmp_path / 'out.zip', '--skip-corrupt')
    assert result.returncode == 0, result.stderr
    assert 'skipped ' in result.stdout and f"shard '{damaged}'" in result.stderr
    _images, labels = _read_zip(tmp_path / 'out.zip')
    captions = [caption for _name, caption in labels]
    intact = [caption for key, caption in sorted(fixture['good'].items()) if not key.startswith('cc3m/00002.tar/')]
    assert set(intact) <= set(captions) <= set(fixture['good'].values())
    assert len(captions) < len(fixture['good'])


def test_max_images_counts_samples_read(tmp_path):
    fixture = shard_fixtures.build(tmp_path / 'shards')  # Sorted, the corrupt sample is the 15th (index 14).
    ids = sorted(fixture['good'] | dict.fromkeys(fixture['corrupt']))
    assert ids.index(fixture['corrupt'][0]) == 14
    result = _to_zip(tmp_path / 'shards', tmp_path / 'out.zip', '--max-images=16', '--skip-corrupt')
    assert result.returncode == 0, result.stderr
    assert 'Wrote 15 ' in result.stdout and 'skipped 1 corrupt' in result.stdout
    _images, labels = _read_zip(tmp_path / 'out.zip')
    assert labels == [[_fname(idx), fixture['good'][ids[idx]]] for idx in range(16) if idx != 14]


def test_folder_without_finished_shards_is_refused(tmp_path):
    shard_fixtures.write_shard(str(tmp_path / 'shards' / '00000.tar'),
        [dict(key='a', caption='a cat', image=shard_fixtures.image_bytes((1, 2, 3)))], finished=False)
    result = _to_zip(tmp_path / 'shards', tmp_path / 'out.zip')
    _assert_refused(result, r"'.*shards' has no finished shards: its 1 \.tar file\(s\) have no _stats\.json",
        tmp_path / 'out.zip')

# ----------------------------------------------------------------------------
# COCO 2014 val, as zero-shot FID uses it.


def _jpeg(path, size, colour, mode='RGB'):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    PIL.Image.new(mode, size, colour).save(path, format='JPEG', quality=95)


def test_coco_2014_val_layout_gives_a_256_zip_with_captions(tmp_path):
    root = tmp_path / 'coco'
    # (image id, size, colour, mode, captions); COCO 2014 names files by split and zero-padded id.
    photos = [(42, (64, 48), (200, 40, 40), 'RGB', ['A red wall.', 'Red paint on a wall.']),
              (7, (40, 72), 128, 'L', ['A grey sky\nat noon.']),  # Grayscale, as a few COCO photos are.
              (1000, (50, 50), (0, 0, 250), 'RGB', [])]             # No caption: left out.
    images, annotations = [], []
    for image_id, size, colour, mode, captions in photos:
        fname = f'COCO_val2014_{image_id:012d}.jpg'
        _jpeg(root / 'val2014' / fname, size, colour, mode)
        images.append(dict(id=image_id, file_name=fname, width=size[0], height=size[1]))
        annotations += [dict(id=len(annotations), image_id=image_id, caption=caption) for caption in captions]
    os.makedirs(root / 'annotations')
    (root / 'annotations' / 'captions_val2014.json').write_text(json.dumps(dict(images=images,
        annotations=annotations)))

    result = _run_tool('--source', root / 'annotations' / 'captions_val2014.json', '--dest',
        tmp_path / 'coco_val256.zip', '--resolution=256x256', '--transform=center-crop')
    assert result.returncode == 0, result.stderr
    assert 'Wrote 2 256x256 RGB images' in result.stdout and 'skipped 1 without a caption' in result.stdout

    # File-name order: ...000000000007 before ...000000000042; id 42's caption drawn with the fixed seed.
    red_caption = photos[0][4][np.random.RandomState(0).randint(2)]
    written, labels = _read_zip(tmp_path / 'coco_val256.zip')
    assert labels == [[_fname(0), 'A grey sky at noon.'], [_fname(1), red_caption]]
    np.testing.assert_allclose(written[_fname(0)].reshape(-1, 3).mean(axis=0), [128] * 3, atol=3)
    np.testing.assert_allclose(written[_fname(1)].reshape(-1, 3).mean(axis=0), [200, 40, 40], atol=6)

# ----------------------------------------------------------------------------
