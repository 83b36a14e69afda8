"""End-to-end tests of dataset_tool.py: run as a subprocess on small sources generated here."""

import gzip
import io
import json
import os
import pickle
import re
import shutil
import tarfile
import zipfile

import numpy as np
import PIL.Image
import pytest

from helpers import run_python
from training.dataset import ImageFolderDataset

# ----------------------------------------------------------------------------
# Sources.


def _random_image(size, channels=3, seed=0):
    width, height = (size, size) if isinstance(size, int) else size
    shape = [height, width] + ([channels] if channels > 1 else [])
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def _image_folder(path, images, labels=None):
    """images: {relative file name: uint8 array}; labels: {relative file name: label} for dataset.json."""
    for fname, image in images.items():
        os.makedirs(os.path.join(path, os.path.dirname(fname)), exist_ok=True)
        PIL.Image.fromarray(image).save(os.path.join(path, fname))
    if labels is not None:
        with open(os.path.join(path, 'dataset.json'), 'w') as f:
            json.dump({'labels': [[fname, label] for fname, label in labels.items()]}, f)
    return str(path)


def _caption_folder(path, images, captions):
    """_image_folder plus a .txt caption file beside each image named in captions ({image fname: text})."""
    _image_folder(path, images)
    for fname, text in captions.items():
        with open(os.path.join(path, os.path.splitext(fname)[0] + '.txt'), 'w', encoding='utf-8') as f:
            f.write(text)
    return str(path)


def _fake_coco(root, images, captions, split='train2017'):
    """COCO layout: root/annotations/captions_SPLIT.json and the images in root/SPLIT. images: {file name: array},
    listed in the json in the given order; captions: [(file name, caption)], in annotation order."""
    _image_folder(os.path.join(root, split), images)
    ids = {fname: 100 + 7 * idx for idx, fname in enumerate(images)}
    data = {
        'info': {'description': 'fake COCO'},
        'images': [{'id': ids[fname], 'file_name': fname, 'width': image.shape[1], 'height': image.shape[0]}
                   for fname, image in images.items()],
        'annotations': [{'id': idx, 'image_id': ids[fname], 'caption': caption}
                        for idx, (fname, caption) in enumerate(captions)],
    }
    os.makedirs(os.path.join(root, 'annotations'), exist_ok=True)
    json_path = os.path.join(root, 'annotations', f'captions_{split}.json')
    with open(json_path, 'w') as f:
        json.dump(data, f)
    return json_path


def _idx_bytes(array):
    """MNIST IDX format: two zero bytes, type 0x08 (ubyte), ndim, big-endian uint32 sizes, then the data."""
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, dtype='>u4').tobytes()
    return header + array.astype(np.uint8).tobytes()


def _fake_mnist(path, images, labels):
    os.makedirs(path)
    with gzip.open(os.path.join(path, 'train-images-idx3-ubyte.gz'), 'wb') as f:
        f.write(_idx_bytes(images))
    with gzip.open(os.path.join(path, 'train-labels-idx1-ubyte.gz'), 'wb') as f:
        f.write(_idx_bytes(labels))
    return str(path)


def _fake_cifar10(path, batch_size=2):
    """cifar-10-python.tar.gz layout: cifar-10-batches-py/data_batch_{1..5}, each a pickled dict of rows NCHW."""
    rng = np.random.default_rng(1)
    images, labels = [], []
    with tarfile.open(path, 'w:gz') as archive:
        for batch in range(1, 6):
            data = rng.integers(0, 256, size=[batch_size, 3 * 32 * 32], dtype=np.uint8)
            batch_labels = [int(x) for x in rng.integers(0, 10, size=batch_size)]
            payload = pickle.dumps({'batch_label': f'training batch {batch} of 5', 'data': data,
                'labels': batch_labels, 'filenames': [f'img{i}.png' for i in range(batch_size)]}, protocol=2)
            info = tarfile.TarInfo(f'cifar-10-batches-py/data_batch_{batch}')
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
            images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
            labels += batch_labels
    return str(path), np.concatenate(images), labels


def _run_tool(*args, env=None):
    return run_python(['dataset_tool.py'] + [str(arg) for arg in args], env=env, timeout=120)


def _read_dataset(dest):
    """Returns ({fname: HWC uint8 image}, dataset.json labels) of a tool-written zip or folder."""
    if str(dest).endswith('.zip'):
        with zipfile.ZipFile(dest) as archive:
            files = {name: archive.read(name) for name in archive.namelist()}
    else:
        files = {}
        for root, _dirs, fnames in os.walk(dest):
            for fname in fnames:
                with open(os.path.join(root, fname), 'rb') as f:
                    files[os.path.relpath(os.path.join(root, fname), dest).replace(os.sep, '/')] = f.read()
    images = {name: np.asarray(PIL.Image.open(io.BytesIO(data)))
        for name, data in files.items() if name.endswith('.png')}
    labels = json.loads(files['dataset.json'])['labels']
    names = list(files)
    assert set(names) == set(images) | {'dataset.json'}
    return images, labels


def _expected_fnames(num):
    return [f'{idx // 1000:05d}/img{idx:08d}.png' for idx in range(num)]

# ----------------------------------------------------------------------------
# Conversions.


def test_folder_with_labels_to_zip_and_folder(tmp_path):
    images = {f'sub{idx % 2}/photo{idx}.png': _random_image(8, seed=idx) for idx in range(5)}
    labels = {fname: idx % 3 for idx, fname in enumerate(images)}
    source = _image_folder(tmp_path / 'src', images, labels)
    order = sorted(images) # The tool reads the files in sorted path order.

    result = _run_tool('--source', source, '--dest', tmp_path / 'out.zip')
    assert result.returncode == 0, result.stderr
    assert "Wrote 5 8x8 RGB images" in result.stdout
    written, written_labels = _read_dataset(tmp_path / 'out.zip')
    assert sorted(written) == _expected_fnames(5)
    assert written_labels == [[fname, labels[src]] for fname, src in zip(_expected_fnames(5), order)]
    for fname, src in zip(_expected_fnames(5), order):
        np.testing.assert_array_equal(written[fname], images[src])

    # Stored as uncompressed PNG in an uncompressed zip.
    with zipfile.ZipFile(tmp_path / 'out.zip') as archive:
        info = archive.getinfo('00000/img00000000.png')
        assert info.compress_type == zipfile.ZIP_STORED and info.file_size >= 8 * 8 * 3

    result = _run_tool('--source', source, '--dest', tmp_path / 'out')
    assert result.returncode == 0, result.stderr
    folder_images, folder_labels = _read_dataset(tmp_path / 'out')
    assert folder_labels == written_labels
    for fname in written:
        np.testing.assert_array_equal(folder_images[fname], written[fname])
    assert [entry for entry in os.listdir(tmp_path) if entry.startswith('.')] == [] # No temporary leftovers.

    # What the tool writes is what training reads.
    dataset = ImageFolderDataset(str(tmp_path / 'out.zip'), use_labels=True)
    assert len(dataset) == 5 and dataset.label_dim == 3 and dataset.name == 'out'
    np.testing.assert_array_equal(dataset[0][0], images[order[0]].transpose(2, 0, 1))


def test_zip_source_and_max_images_and_subfolders(tmp_path):
    gray = {f'{idx:04d}.png': np.full([4, 4], idx % 256, dtype=np.uint8) for idx in range(1003)}
    source = _image_folder(tmp_path / 'src', gray)
    with zipfile.ZipFile(tmp_path / 'src.zip', 'w') as archive:
        for fname in gray:
            archive.write(os.path.join(source, fname), fname)

    result = _run_tool('--source', tmp_path / 'src.zip', '--dest', tmp_path / 'out', '--max-images', 1001)
    assert result.returncode == 0, result.stderr
    written, labels = _read_dataset(tmp_path / 'out')
    assert sorted(written) == _expected_fnames(1001)
    assert '00001/img00001000.png' in written # 1000 images per subfolder.
    assert labels is None
    np.testing.assert_array_equal(written['00001/img00001000.png'], gray['1000.png'])
    assert written['00000/img00000007.png'].shape == (4, 4) # Grayscale stays one channel.


def test_mixed_formats(tmp_path):
    ramp = np.arange(8, dtype=np.uint8) * 16
    smooth = np.stack(np.broadcast_arrays(ramp[:, None], ramp[None, :], 255 - ramp[:, None]), axis=2)
    os.makedirs(tmp_path / 'src')
    PIL.Image.fromarray(smooth).save(tmp_path / 'src' / 'a.jpg', quality=95, subsampling=0)
    PIL.Image.fromarray(smooth).save(tmp_path / 'src' / 'b.webp', lossless=True)
    PIL.Image.fromarray(smooth).convert('P').save(tmp_path / 'src' / 'c.png') # Palette image: written as RGB.
    result = _run_tool('--source', tmp_path / 'src', '--dest', tmp_path / 'out.zip')
    assert result.returncode == 0, result.stderr
    written, _labels = _read_dataset(tmp_path / 'out.zip')
    assert np.abs(written['00000/img00000000.png'].astype(int) - smooth).max() <= 8
    np.testing.assert_array_equal(written['00000/img00000001.png'], smooth)
    assert written['00000/img00000002.png'].shape == (8, 8, 3)


@pytest.mark.parametrize('as_file', [True, False], ids=['images-gz', 'folder'])
def test_mnist(tmp_path, as_file):
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, size=[7, 28, 28], dtype=np.uint8)
    labels = rng.integers(0, 10, size=[7], dtype=np.uint8)
    source = _fake_mnist(tmp_path / 'mnist', images, labels)
    if as_file:  # The official spelling: the images file, its labels file beside it.
        source = os.path.join(source, 'train-images-idx3-ubyte.gz')
    result = _run_tool('--source', source, '--dest', tmp_path / 'mnist.zip')
    assert result.returncode == 0, result.stderr
    written, written_labels = _read_dataset(tmp_path / 'mnist.zip')
    assert written_labels == [[fname, int(label)] for fname, label in zip(_expected_fnames(7), labels)]
    for fname, image in zip(_expected_fnames(7), images):
        assert written[fname].shape == (32, 32)
        np.testing.assert_array_equal(written[fname][2:30, 2:30], image) # Padded 28 -> 32 with black.
        assert written[fname].sum() == image.astype(np.int64).sum()


def test_mnist_with_a_bad_header_is_refused(tmp_path):
    source = _fake_mnist(tmp_path / 'mnist', np.zeros([2, 28, 28], np.uint8), np.zeros([3], np.uint8))
    result = _run_tool('--source', source, '--dest', tmp_path / 'out.zip')
    _assert_refused(result, r"has 2 images but .*labels-idx1-ubyte.gz. has 3 labels", tmp_path / 'out.zip')


def test_cifar10(tmp_path):
    source, images, labels = _fake_cifar10(tmp_path / 'cifar-10-python.tar.gz')
    result = _run_tool('--source', source, '--dest', tmp_path / 'cifar')
    assert result.returncode == 0, result.stderr
    written, written_labels = _read_dataset(tmp_path / 'cifar')
    assert written_labels == [[fname, label] for fname, label in zip(_expected_fnames(10), labels)]
    for fname, image in zip(_expected_fnames(10), images):
        np.testing.assert_array_equal(written[fname], image)


def test_lmdb(tmp_path):
    lmdb = pytest.importorskip('lmdb')
    images = [_random_image(8, seed=idx) for idx in range(3)]
    with lmdb.open(str(tmp_path / 'lsun_lmdb'), map_size=1 << 24) as env, env.begin(write=True) as txn:
        for idx, image in enumerate(images):
            buffer = io.BytesIO()
            PIL.Image.fromarray(image).save(buffer, format='webp', lossless=True)
            txn.put(f'key{idx:02d}'.encode(), buffer.getvalue())
    result = _run_tool('--source', tmp_path / 'lsun_lmdb', '--dest', tmp_path / 'lsun.zip')
    assert result.returncode == 0, result.stderr
    written, labels = _read_dataset(tmp_path / 'lsun.zip')
    assert labels is None
    for fname, image in zip(_expected_fnames(3), images):
        np.testing.assert_array_equal(written[fname], image)


def test_lmdb_without_the_package(tmp_path):
    os.makedirs(tmp_path / 'lsun_lmdb')
    (tmp_path / 'lsun_lmdb' / 'data.mdb').write_bytes(b'')
    code = ('import runpy, sys; sys.modules["lmdb"] = None; sys.argv[0] = "dataset_tool.py"; '
        'runpy.run_path("dataset_tool.py", run_name="__main__")')
    result = run_python(['-c', code, '--source', str(tmp_path / 'lsun_lmdb'), '--dest', str(tmp_path / 'out.zip')])
    _assert_refused(result, r'pip install lmdb', tmp_path / 'out.zip')

def test_caption_files_become_labels_that_training_reads(tmp_path):
    images = {'b/dog.png': _random_image(8, seed=1), 'a/cat.png': _random_image(8, seed=2),
              'a/cow.png': _random_image(8, seed=3)}
    captions = {'b/dog.png': 'a dog\n on the grass \n', 'a/cat.png': '  a cat  ', 'a/cow.png': '\ufeffune vache, café'}
    source = _caption_folder(tmp_path / 'src', images, captions)
    (tmp_path / 'src' / 'notes.txt').write_text('beside no image: ignored')
    result = _run_tool('--source', source, '--dest', tmp_path / 'out.zip')
    assert result.returncode == 0, result.stderr

    order = ['a/cat.png', 'a/cow.png', 'b/dog.png']  # Sorted path order.
    expected = ['a cat', 'une vache, café', 'a dog on the grass']
    written, labels = _read_dataset(tmp_path / 'out.zip')
    assert labels == [[fname, caption] for fname, caption in zip(_expected_fnames(3), expected)]
    dataset = ImageFolderDataset(str(tmp_path / 'out.zip'), use_labels=True)
    assert dataset.has_captions and dataset.label_dim == 0
    for idx, (fname, caption) in enumerate(zip(order, expected)):
        image, label = dataset[idx]
        assert label == caption
        np.testing.assert_array_equal(image, images[fname].transpose(2, 0, 1))


def test_dataset_json_wins_over_caption_files(tmp_path):
    images = {'a.png': _random_image(8), 'b.png': _random_image(8, seed=1)}
    source = _image_folder(tmp_path / 'src', images, labels={'a.png': 'from json a', 'b.png': 'from json b'})
    (tmp_path / 'src' / 'a.txt').write_text('from a file')
    result = _run_tool('--source', source, '--dest', tmp_path / 'out')
    assert result.returncode == 0, result.stderr
    assert _read_dataset(tmp_path / 'out')[1] == [[fname, f'from json {name}']
                                                  for fname, name in zip(_expected_fnames(2), 'ab')]


COCO_IMAGES = {'c.png': _random_image((12, 8), seed=3), 'a.png': _random_image((8, 16), seed=1),
               'b.png': _random_image(8, channels=1, seed=2)}
COCO_CAPTIONS = [('a.png', 'A cat on a mat. '), ('c.png', 'Three\nbirds.'), ('a.png', 'A mat under a cat.')]


def test_coco_captions(tmp_path):
    json_path = _fake_coco(tmp_path / 'coco', COCO_IMAGES, COCO_CAPTIONS)
    args = ['--source', json_path, '--transform=center-crop', '--resolution=8x8']
    result = _run_tool(*args, '--dest', tmp_path / 'out.zip')
    assert result.returncode == 0, result.stderr
    assert "Wrote 2 8x8 RGB images" in result.stdout and 'skipped 1 without a caption' in result.stdout

    # Images in file-name order; b.png has no caption. a.png's caption is drawn as the docstring says.
    a_captions = ['A cat on a mat.', 'A mat under a cat.']
    a_caption = a_captions[np.random.RandomState(0).randint(2)]
    written, labels = _read_dataset(tmp_path / 'out.zip')
    assert labels == [[_expected_fnames(2)[0], a_caption], [_expected_fnames(2)[1], 'Three birds.']]
    np.testing.assert_array_equal(written['00000/img00000000.png'], COCO_IMAGES['a.png'][4:12, :])  # 8 wide, 16 high.
    np.testing.assert_array_equal(written['00000/img00000001.png'], COCO_IMAGES['c.png'][:, 2:10])  # 12 wide, 8 high.

    # Reruns write the same dataset; --coco-images reads the images from elsewhere.
    os.rename(tmp_path / 'coco' / 'train2017', tmp_path / 'elsewhere')
    result = _run_tool(*args, '--dest', tmp_path / 'again', '--coco-images', tmp_path / 'elsewhere')
    assert result.returncode == 0, result.stderr
    again, again_labels = _read_dataset(tmp_path / 'again')
    assert again_labels == labels
    for fname in written:
        np.testing.assert_array_equal(again[fname], written[fname])
    dataset = ImageFolderDataset(str(tmp_path / 'again'), use_labels=True)
    assert [dataset.get_label(idx) for idx in range(len(dataset))] == [a_caption, 'Three birds.']


def test_coco_caption_choice_is_seeded_and_not_always_the_first():
    import dataset_tool  # The choice alone, in this process: the end-to-end test above has too few images to show it.
    images = [{'id': idx, 'file_name': f'{idx}.png'} for idx in range(6)]
    captions = {idx: ['first', 'second'] for idx in range(6)}
    chosen = [caption for _fname, caption in dataset_tool._choose_coco_captions(images, captions)]
    assert chosen == ['first', 'second', 'second', 'first', 'second', 'second']  # RandomState(0).randint(2) draws.


def test_coco_grayscale_images_become_rgb(tmp_path):
    images = {'a.png': _random_image(8), 'b.png': _random_image(8, channels=1, seed=2)}
    json_path = _fake_coco(tmp_path / 'coco', images, [('a.png', 'colour'), ('b.png', 'grey')], split='val2014')
    result = _run_tool('--source', json_path, '--dest', tmp_path / 'out.zip')
    assert result.returncode == 0, result.stderr
    written, labels = _read_dataset(tmp_path / 'out.zip')
    assert [caption for _fname, caption in labels] == ['colour', 'grey']
    np.testing.assert_array_equal(written['00000/img00000001.png'], np.stack([images['b.png']] * 3, axis=2))

# ----------------------------------------------------------------------------
# Transforms.


def test_center_crop(tmp_path):
    wide = _random_image((16, 8))
    tall = _random_image((8, 16), seed=1)
    source = _image_folder(tmp_path / 'src', {'a.png': wide, 'b.png': tall})
    result = _run_tool('--source', source, '--dest', tmp_path / 'out.zip', '--transform=center-crop',
        '--resolution=8x8')
    assert result.returncode == 0, result.stderr
    written, _labels = _read_dataset(tmp_path / 'out.zip')
    np.testing.assert_array_equal(written['00000/img00000000.png'], wide[:, 4:12])
    np.testing.assert_array_equal(written['00000/img00000001.png'], tall[4:12, :])


def _assert_letterboxed(written, contents):
    """The written 16x16 images hold `contents` (16x8 each) between black bars of 4 rows."""
    for idx, content in enumerate(contents):
        image = written[f'00000/img{idx:08d}.png']
        assert image.shape == (16, 16, 3)
        np.testing.assert_array_equal(image[4:12], content)
        assert image[:4].max() == 0 and image[12:].max() == 0


def test_center_crop_wide_as_the_official_tool(tmp_path):
    """The middle round(W * height / width) rows, resized to WxH whatever their aspect, letterboxed into WxW."""
    wide = _random_image((32, 16))     # Rows 4..11 (8 = 16 * 16 / 32), all 32 columns squeezed to 16.
    square = _random_image((16, 16), seed=1)  # All 16 rows kept, squeezed to 8.
    very_wide = _random_image((32, 8), seed=2)  # 4 rows would be kept: fewer than 8, left out.
    narrow = _random_image((8, 16), seed=3)  # Narrower than 16: left out.
    source = _image_folder(tmp_path / 'src', {'a.png': wide, 'b.png': square, 'c.png': very_wide, 'd.png': narrow})
    result = _run_tool('--source', source, '--dest', tmp_path / 'out.zip', '--transform=center-crop-wide',
        '--resolution=16,8')
    assert result.returncode == 0, result.stderr
    assert 'left out 2 smaller than 16x8' in result.stdout
    written, _labels = _read_dataset(tmp_path / 'out.zip')
    assert sorted(written) == _expected_fnames(2)
    lanczos = lambda image: np.asarray(PIL.Image.fromarray(image).resize((16, 8), PIL.Image.Resampling.LANCZOS))
    _assert_letterboxed(written, [lanczos(wide[4:12]), lanczos(square)])


def test_center_crop_wide_keep_aspect(tmp_path):
    very_wide = _random_image((32, 8))  # Aspect 4:1 -> the middle 16x8.
    square = _random_image((16, 16), seed=1) # Aspect 1:1 -> the middle 16x8.
    tiny = _random_image((8, 4), seed=2) # Smaller than 16x8: left out, not upscaled.
    source = _image_folder(tmp_path / 'src', {'a.png': very_wide, 'b.png': square, 'c.png': tiny})
    result = _run_tool('--source', source, '--dest', tmp_path / 'out.zip', '--transform=center-crop-wide-keep-aspect',
        '--resolution=16x8')
    assert result.returncode == 0, result.stderr
    assert 'left out 1 smaller than 16x8' in result.stdout
    written, _labels = _read_dataset(tmp_path / 'out.zip')
    assert sorted(written) == _expected_fnames(2)
    _assert_letterboxed(written, [very_wide[:, 8:24], square[4:12]])


def test_max_images_counts_images_read_and_names_follow_the_source(tmp_path):
    """As the official tool: --max-images=N reads N source images; those left out leave gaps in the names."""
    images = {'a.png': _random_image(8), 'b.png': _random_image(4, seed=1), 'c.png': _random_image(8, seed=2),
              'd.png': _random_image(8, seed=3)}
    source = _image_folder(tmp_path / 'src', images)
    result = _run_tool('--source', source, '--dest', tmp_path / 'out.zip', '--transform=center-crop-wide',
        '--resolution=8x8', '--max-images=3')
    assert result.returncode == 0, result.stderr
    written, _labels = _read_dataset(tmp_path / 'out.zip')
    assert sorted(written) == ['00000/img00000000.png', '00000/img00000002.png']  # b.png is too small.
    np.testing.assert_array_equal(written['00000/img00000002.png'], images['c.png'])


def test_resolution_resizes_with_lanczos(tmp_path):
    images = {'a.png': _random_image(16), 'b.png': _random_image(8, seed=1)}
    source = _image_folder(tmp_path / 'src', images)
    result = _run_tool('--source', source, '--dest', tmp_path / 'out.zip', '--resolution', '8x8')
    assert result.returncode == 0, result.stderr
    written, _labels = _read_dataset(tmp_path / 'out.zip')
    expected = np.asarray(PIL.Image.fromarray(images['a.png']).resize((8, 8), PIL.Image.Resampling.LANCZOS))
    np.testing.assert_array_equal(written['00000/img00000000.png'], expected)
    np.testing.assert_array_equal(written['00000/img00000001.png'], images['b.png'])

# ----------------------------------------------------------------------------
# Refusals: exit code != 0, one line 'Error: ...' on stderr, no traceback, nothing left behind.


def _assert_refused(result, pattern, dest):
    assert result.returncode != 0
    assert 'Traceback' not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('Error: '), result.stderr
    assert re.search(pattern, lines[0]), lines[0]
    assert not os.path.exists(dest)
    parent = os.path.dirname(os.path.abspath(dest))
    if os.path.isdir(parent):
        assert [entry for entry in os.listdir(parent) if entry.endswith('.tmp')] == []


def _mixed_sizes(path):
    return _image_folder(path, {'a.png': _random_image(8), 'b.png': _random_image(8, seed=1),
        'c.png': _random_image(16)})


def _mixed_channels(path):
    return _image_folder(path, {'a.png': _random_image(8), 'b.png': _random_image(8, channels=1)})


def _rgba(path):
    return _image_folder(path, {'a.png': _random_image(8, channels=4)})


def _single(size):
    return lambda path: _image_folder(path, {'a.png': _random_image(size)})


def _missing_label(path):
    return _image_folder(path, {'a.png': _random_image(8), 'b.png': _random_image(8)}, labels={'a.png': 1})


def _captions_and_numbers(path):
    return _image_folder(path, {'a.png': _random_image(8), 'b.png': _random_image(8)},
        labels={'a.png': 'a cat', 'b.png': 1})


def _missing_caption(path):
    return _caption_folder(path, {'a.png': _random_image(8), 'b.png': _random_image(8), 'c.png': _random_image(8)},
        captions={'a.png': 'a cat', 'c.png': 'a dog'})


def _empty_caption(path):
    return _caption_folder(path, {'a.png': _random_image(8), 'b.png': _random_image(8)},
        captions={'a.png': 'a cat', 'b.png': ' \n\t\n'})


def _caption_not_utf8(path):
    source = _caption_folder(path, {'a.png': _random_image(8)}, captions={'a.png': 'placeholder'})
    (path / 'a.txt').write_bytes('un café'.encode('latin-1'))
    return source


def _coco_without_images(path):
    json_path = _fake_coco(path, {'a.png': _random_image(8)}, [('a.png', 'a cat')])
    shutil.rmtree(os.path.join(path, 'train2017'))
    return json_path


def _coco_missing_an_image(path):
    json_path = _fake_coco(path, {'a.png': _random_image(8), 'b.png': _random_image(8)},
        [('a.png', 'a cat'), ('b.png', 'a dog')])
    os.remove(os.path.join(path, 'train2017', 'b.png'))
    return json_path


def _coco_not_coco(path):
    os.makedirs(path)
    with open(os.path.join(path, 'captions_train2017.json'), 'w') as f:
        json.dump({'annotations': []}, f)
    os.makedirs(os.path.join(os.path.dirname(path), 'train2017'))
    return os.path.join(path, 'captions_train2017.json')


@pytest.mark.parametrize('make_source, args, dest_name, pattern', [
    # Refused at the third image, after two were written: to a zip and to a folder.
    (_mixed_sizes, [], 'out.zip', r"image '.*c\.png' is 16x16 RGB but image '.*a\.png' is 8x8 RGB; .*--resolution"),
    (_mixed_sizes, [], 'out', r"image '.*c\.png' is 16x16 RGB but image '.*a\.png' is 8x8 RGB"),
    (_mixed_channels, [], 'out', r"image '.*b\.png' is 8x8 grayscale but image '.*a\.png' is 8x8 RGB"),
    (_single((8, 4)), [], 'out.zip', r"image '.*a\.png' is 8x4; dataset images must be square"),
    (_single(12), [], 'out.zip', r"image '.*a\.png' is 12x12; the size must be a power of two"),
    (_single(8), ['--resolution=8x4'], 'out.zip', r'--resolution=8x4 is not square'),
    (_single(8), ['--resolution=12x12'], 'out.zip', r'not a power of two'),
    (_single(8), ['--transform=center-crop'], 'out.zip', r'--transform=center-crop needs --resolution'),
    (_rgba, [], 'out.zip', r"image '.*a\.png' has 4 channels"),
    (_missing_label, [], 'out.zip', r"'.*dataset\.json' has no label for image 'b\.png'"),
    (_captions_and_numbers, [], 'out.zip', r"gives image 'b\.png' a class index label but image 'a\.png' a caption"),
    (_missing_caption, [], 'out.zip', r"image '.*b\.png' has no caption file '.*b\.txt' although other images "
        r"have one; add it or remove the image$"),
    (_empty_caption, [], 'out', r"caption file '.*b\.txt' is empty"),
    (_caption_not_utf8, [], 'out.zip', r"caption file '.*a\.txt' is not UTF-8 text \(byte 6: .*\); save it as UTF-8"),
    (_coco_without_images, [], 'out.zip', r"COCO image folder '.*train2017' does not exist; .*--coco-images=DIR"),
    (_coco_without_images, ['--coco-images=/no/such/dir'], 'out.zip', r"COCO image folder '/no/such/dir' does not"),
    (_coco_missing_an_image, [], 'out.zip', r"image '.*train2017/b\.png' listed in '.*captions_train2017\.json' "
        r"does not exist"),
    (_coco_not_coco, [], 'out.zip', r"'.*captions_train2017\.json' is not a COCO captions file: .*KeyError: 'images'"),
    (_single(8), ['--coco-images=.'], 'out.zip', r'--coco-images applies only to a COCO captions_\*\.json --source'),
])
def test_refusals(tmp_path, make_source, args, dest_name, pattern):
    source = make_source(tmp_path / 'src')
    dest = tmp_path / 'new' / 'parent' / dest_name # Parent folders made for the output go away too.
    _assert_refused(_run_tool('--source', source, '--dest', dest, *args), pattern, dest)
    assert not os.path.exists(tmp_path / 'new')


def test_missing_or_empty_source_is_refused(tmp_path):
    _assert_refused(_run_tool('--source', tmp_path / 'nothing', '--dest', tmp_path / 'out.zip'),
        r"--source '.*nothing' does not exist", tmp_path / 'out.zip')
    os.makedirs(tmp_path / 'empty')
    (tmp_path / 'empty' / 'notes.txt').write_text('no images here')
    _assert_refused(_run_tool('--source', tmp_path / 'empty', '--dest', tmp_path / 'out.zip'),
        r"--source '.*empty' contains no images", tmp_path / 'out.zip')


def test_existing_destination_folder_is_refused_and_zip_replaced(tmp_path):
    source = _single(8)(tmp_path / 'src')
    os.makedirs(tmp_path / 'full')
    (tmp_path / 'full' / 'keep.txt').write_text('precious')
    result = _run_tool('--source', source, '--dest', tmp_path / 'full')
    assert result.returncode != 0 and 'Traceback' not in result.stderr
    assert result.stderr.strip() == f"Error: --dest '{tmp_path / 'full'}' already exists and is not empty"
    assert os.listdir(tmp_path / 'full') == ['keep.txt']

    (tmp_path / 'old.zip').write_bytes(b'PK old data')  # An existing zip is replaced, as the official tool does.
    result = _run_tool('--source', source, '--dest', tmp_path / 'old.zip')
    assert result.returncode == 0, result.stderr
    assert sorted(_read_dataset(tmp_path / 'old.zip')[0]) == _expected_fnames(1)

    os.makedirs(tmp_path / 'empty')
    assert _run_tool('--source', source, '--dest', tmp_path / 'empty').returncode == 0 # An empty folder is fine.
    assert sorted(os.listdir(tmp_path / 'empty')) == ['00000', 'dataset.json']


def test_corrupt_images_are_named_and_skipped_only_when_asked(tmp_path):
    images = {f'{idx}.png': _random_image(8, seed=idx) for idx in range(4)}
    source = _image_folder(tmp_path / 'src', images)
    (tmp_path / 'src' / '2.png').write_bytes(b'\x89PNG garbage')
    data = (tmp_path / 'src' / '0.png').read_bytes()
    (tmp_path / 'src' / '3.png').write_bytes(data[:len(data) // 2]) # Truncated.

    result = _run_tool('--source', source, '--dest', tmp_path / 'out.zip')
    _assert_refused(result, r"cannot read image '.*2\.png': .*--skip-corrupt", tmp_path / 'out.zip')

    result = _run_tool('--source', source, '--dest', tmp_path / 'out.zip', '--skip-corrupt')
    assert result.returncode == 0, result.stderr
    assert 'Traceback' not in result.stderr
    assert "'" + os.path.join(source, '2.png') + "'" in result.stderr
    assert "'" + os.path.join(source, '3.png') + "'" in result.stderr
    assert 'skipped 2 corrupt' in result.stdout
    written, _labels = _read_dataset(tmp_path / 'out.zip')
    np.testing.assert_array_equal(written['00000/img00000000.png'], images['0.png'])
    np.testing.assert_array_equal(written['00000/img00000001.png'], images['1.png'])
    assert len(written) == 2

# ----------------------------------------------------------------------------
