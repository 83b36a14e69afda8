"""Tests for training/dataset.py on small image folders and zip archives generated here."""

import json
import os
import pickle
import zipfile

import numpy as np
import PIL.Image
import pytest
import torch

from training.dataset import DatasetError, ImageFolderDataset

# ----------------------------------------------------------------------------
# Generated datasets.


def _random_images(num, size=8, channels=3, seed=0):
    rng = np.random.default_rng(seed)
    shape = [num, size, size] + ([channels] if channels > 1 else [])
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


def _write_folder(path, images, labels=None, fnames=None, write_json=True):
    """Writes images as PNGs (tool layout unless fnames are given) and dataset.json; returns the file names."""
    fnames = fnames or [f'{idx // 1000:05d}/img{idx:08d}.png' for idx in range(len(images))]
    for fname, image in zip(fnames, images):
        os.makedirs(os.path.join(path, os.path.dirname(fname)), exist_ok=True)
        PIL.Image.fromarray(image).save(os.path.join(path, fname))
    if write_json:
        with open(os.path.join(path, 'dataset.json'), 'w') as f:
            json.dump({'labels': None if labels is None else [[n, l] for n, l in zip(fnames, labels)]}, f)
    return fnames


def _zip_folder(folder, zip_path):
    with zipfile.ZipFile(zip_path, 'w') as archive:
        for root, _dirs, files in os.walk(folder):
            for fname in files:
                full = os.path.join(root, fname)
                archive.write(full, os.path.relpath(full, folder))
    return zip_path


@pytest.fixture
def labeled(tmp_path):
    """A 6-image RGB dataset with class labels, as a folder and as a zip."""
    images = _random_images(6)
    labels = [2, 0, 1, 2, 0, 4]
    folder = tmp_path / 'labeled'
    _write_folder(folder, images, labels)
    return dict(folder=str(folder), zip=_zip_folder(folder, str(tmp_path / 'labeled.zip')), images=images,
        labels=labels)


def _items(dataset):
    return [dataset[idx] for idx in range(len(dataset))]

# ----------------------------------------------------------------------------


def test_zip_and_folder_give_identical_items(labeled):
    for kind in ('folder', 'zip'):
        dataset = ImageFolderDataset(labeled[kind], use_labels=True)
        assert dataset.name == 'labeled'
        assert len(dataset) == 6
        assert dataset.image_shape == [3, 8, 8] and dataset.num_channels == 3 and dataset.resolution == 8
        for idx, (image, label) in enumerate(_items(dataset)):
            assert image.dtype == np.uint8 and image.shape == (3, 8, 8)
            np.testing.assert_array_equal(image, labeled['images'][idx].transpose(2, 0, 1))
            assert label.dtype == np.float32
    folder_items = _items(ImageFolderDataset(labeled['folder'], use_labels=True))
    zip_items = _items(ImageFolderDataset(labeled['zip'], use_labels=True))
    for (image_a, label_a), (image_b, label_b) in zip(folder_items, zip_items):
        np.testing.assert_array_equal(image_a, image_b)
        np.testing.assert_array_equal(label_a, label_b)


def test_class_labels_become_onehot(labeled):
    dataset = ImageFolderDataset(labeled['zip'], use_labels=True)
    assert dataset.has_labels and dataset.has_onehot_labels
    assert dataset.label_shape == [5] and dataset.label_dim == 5
    for idx, class_idx in enumerate(labeled['labels']):
        expected = np.zeros(5, dtype=np.float32)
        expected[class_idx] = 1
        np.testing.assert_array_equal(dataset.get_label(idx), expected)
        np.testing.assert_array_equal(dataset[idx][1], expected)
        assert dataset.get_details(idx).raw_label == class_idx


def test_vector_labels_are_kept(tmp_path):
    labels = [[0.5, -1.0, 2.0], [1, 2, 3], [0.0, 0.25, 7.5]]
    _write_folder(tmp_path / 'vec', _random_images(3), labels)
    dataset = ImageFolderDataset(str(tmp_path / 'vec'), use_labels=True)
    assert dataset.has_labels and not dataset.has_onehot_labels and dataset.label_shape == [3]
    for idx, label in enumerate(labels):
        np.testing.assert_array_equal(dataset.get_label(idx), np.array(label, dtype=np.float32))


def test_without_labels(labeled, tmp_path):
    dataset = ImageFolderDataset(labeled['folder'], use_labels=False)
    assert not dataset.has_labels and dataset.label_dim == 0
    assert dataset[0][1].shape == (0,) and dataset[0][1].dtype == np.float32
    # A dataset.json with null labels (as dataset_tool writes for unlabeled data) gives no labels either.
    _write_folder(tmp_path / 'null', _random_images(2), labels=None)
    dataset = ImageFolderDataset(str(tmp_path / 'null'), use_labels=True)
    assert not dataset.has_labels and dataset.label_shape == [0]


def test_xflip_appends_mirrored_copies(labeled):
    plain = ImageFolderDataset(labeled['zip'], use_labels=True)
    flipped = ImageFolderDataset(labeled['zip'], use_labels=True, xflip=True)
    assert len(flipped) == 2 * len(plain)
    for idx in range(len(plain)):
        image, label = flipped[idx]
        mirror, mirror_label = flipped[idx + len(plain)]
        np.testing.assert_array_equal(image, plain[idx][0])
        np.testing.assert_array_equal(mirror, plain[idx][0][:, :, ::-1])
        np.testing.assert_array_equal(label, mirror_label)
        assert flipped.get_details(idx).xflip is False
        assert flipped.get_details(idx + len(plain)).xflip is True
        assert flipped.get_details(idx + len(plain)).raw_idx == idx
    assert mirror.flags.c_contiguous


def test_max_size_picks_a_fixed_sorted_subset(tmp_path):
    _write_folder(tmp_path / 'many', _random_images(20, size=4))
    path = str(tmp_path / 'many')

    def raw_indices(**kwargs):
        dataset = ImageFolderDataset(path, **kwargs)
        return [dataset.get_details(idx).raw_idx for idx in range(len(dataset))]

    subset = raw_indices(max_size=5, random_seed=3)
    assert len(subset) == 5 and subset == sorted(subset)
    assert subset == raw_indices(max_size=5, random_seed=3)
    assert subset != raw_indices(max_size=5, random_seed=4)
    # The same subset as the official code picks for the same seed, so that runs stay comparable.
    assert subset == sorted(np.random.RandomState(3).permutation(20)[:5].tolist())
    assert raw_indices(max_size=50) == list(range(20))
    # x-flips duplicate the subset, not the whole dataset.
    assert raw_indices(max_size=5, random_seed=3, xflip=True) == subset + subset


def test_dataloader_workers_read_the_zip_correctly(labeled):
    dataset = ImageFolderDataset(labeled['zip'], use_labels=True, xflip=True)
    expected = _items(dataset) # Opens the zip in this process before the workers fork.
    loader = torch.utils.data.DataLoader(dataset, batch_size=3, num_workers=2, shuffle=False)
    images = torch.cat([batch[0] for batch in loader])
    labels = torch.cat([batch[1] for batch in loader])
    np.testing.assert_array_equal(images.numpy(), np.stack([image for image, _ in expected]))
    np.testing.assert_array_equal(labels.numpy(), np.stack([label for _, label in expected]))


def test_pickling_drops_the_zip_handle(labeled):
    dataset = ImageFolderDataset(labeled['zip'], use_labels=True)
    first = dataset[0]
    state = dataset.__getstate__()
    assert state['_zipfile'] is None
    clone = pickle.loads(pickle.dumps(dataset))
    np.testing.assert_array_equal(clone[0][0], first[0])
    np.testing.assert_array_equal(clone[0][1], first[1])
    assert clone.label_shape == dataset.label_shape


def test_image_formats(tmp_path):
    ramp = np.arange(8, dtype=np.uint8) * 16
    rgb = np.stack(np.broadcast_arrays(ramp[:, None], ramp[None, :], 255 - ramp[:, None]), axis=2) # Smooth, for JPEG.
    gray = _random_images(1, size=8, channels=1)[0]
    os.makedirs(tmp_path / 'formats')
    PIL.Image.fromarray(rgb).save(tmp_path / 'formats' / 'a.png')
    PIL.Image.fromarray(rgb).save(tmp_path / 'formats' / 'b.webp', lossless=True)
    PIL.Image.fromarray(rgb).save(tmp_path / 'formats' / 'c.JPG', quality=95, subsampling=0)
    PIL.Image.fromarray(rgb).convert('P').save(tmp_path / 'formats' / 'd.png') # Palette: read as RGB.
    (tmp_path / 'formats' / 'notes.txt').write_text('not an image')
    dataset = ImageFolderDataset(str(tmp_path / 'formats'))
    assert len(dataset) == 4 and dataset.image_shape == [3, 8, 8]
    np.testing.assert_array_equal(dataset[0][0], rgb.transpose(2, 0, 1))
    np.testing.assert_array_equal(dataset[1][0], rgb.transpose(2, 0, 1))
    assert np.abs(dataset[2][0].astype(int) - rgb.transpose(2, 0, 1)).max() <= 8 # Lossy.
    assert dataset[3][0].shape == (3, 8, 8)

    _write_folder(tmp_path / 'gray', [gray, gray])
    dataset = ImageFolderDataset(str(tmp_path / 'gray'))
    assert dataset.image_shape == [1, 8, 8]
    np.testing.assert_array_equal(dataset[0][0][0], gray)

# ----------------------------------------------------------------------------
# Captions (text-to-image datasets) and on-the-fly resizing.

CAPTIONS = ['a red disc on grey', 'two blue squares', 'ünïcode: a café at night', 'a green disc', '']


@pytest.fixture
def captioned(tmp_path):
    """A 5-image dataset whose labels are captions (one of them empty), as a zip."""
    images = _random_images(len(CAPTIONS))
    folder = tmp_path / 'captioned'
    _write_folder(folder, images, CAPTIONS)
    return dict(zip=_zip_folder(folder, str(tmp_path / 'captioned.zip')), images=images)


def test_captions_are_returned_as_str(captioned):
    dataset = ImageFolderDataset(captioned['zip'], use_labels=True)
    assert dataset.has_captions
    # Code that treats labels as vectors sees none.
    assert not dataset.has_labels and not dataset.has_onehot_labels
    assert dataset.label_shape == [0] and dataset.label_dim == 0
    for idx, caption in enumerate(CAPTIONS):
        image, label = dataset[idx]
        np.testing.assert_array_equal(image, captioned['images'][idx].transpose(2, 0, 1))
        assert type(label) is str and label == caption
        assert dataset.get_label(idx) == caption
        assert dataset.get_details(idx).raw_label == caption and dataset.get_details(idx).raw_idx == idx


def test_captions_collate_to_a_list_of_str(captioned):
    dataset = ImageFolderDataset(captioned['zip'], use_labels=True)
    images, captions = next(iter(torch.utils.data.DataLoader(dataset, batch_size=3, shuffle=False)))
    assert images.shape == (3, 3, 8, 8)
    assert list(captions) == CAPTIONS[:3] # torch's default collate keeps a batch of str as a sequence (a tuple).


def test_captions_need_use_labels(captioned):
    dataset = ImageFolderDataset(captioned['zip'])
    assert not dataset.has_captions and dataset.label_dim == 0
    assert dataset[0][1].shape == (0,) and dataset[0][1].dtype == np.float32


def test_captions_follow_xflip_and_max_size(captioned):
    flipped = ImageFolderDataset(captioned['zip'], use_labels=True, xflip=True, max_size=3, random_seed=1)
    assert len(flipped) == 6
    for idx in range(3):
        image, caption = flipped[idx]
        mirror, mirror_caption = flipped[idx + 3]
        raw_idx = flipped.get_details(idx).raw_idx
        assert caption == mirror_caption == CAPTIONS[raw_idx]
        assert flipped.get_details(idx + 3).raw_label == CAPTIONS[raw_idx]
        np.testing.assert_array_equal(mirror, image[:, :, ::-1])


def test_caption_dataset_pickles(captioned):
    dataset = ImageFolderDataset(captioned['zip'], use_labels=True, resize_resolution=4)
    clone = pickle.loads(pickle.dumps(dataset))
    assert clone.has_captions and clone.image_shape == [3, 4, 4]
    assert clone[2][1] == CAPTIONS[2]
    np.testing.assert_array_equal(clone[2][0], dataset[2][0])


def _pil_lanczos(image, size):
    return np.asarray(PIL.Image.fromarray(image).resize((size, size), PIL.Image.Resampling.LANCZOS))


@pytest.mark.parametrize('channels', [3, 1], ids=['rgb', 'gray'])
@pytest.mark.parametrize('size', [8, 32], ids=['down', 'up'])
def test_resize_resolution_is_pils_lanczos(tmp_path, channels, size):
    images = _random_images(2, size=16, channels=channels)
    _write_folder(tmp_path / 'big', images)
    dataset = ImageFolderDataset(str(tmp_path / 'big'), resize_resolution=size)
    assert dataset.image_shape == [channels, size, size] and dataset.resolution == size
    for idx, stored in enumerate(images):
        expected = _pil_lanczos(stored, size)
        expected = expected[np.newaxis] if channels == 1 else expected.transpose(2, 0, 1)
        np.testing.assert_array_equal(dataset[idx][0], expected)
    dataset.check_image_sizes()  # Compares the stored sizes, not the delivered one.


def test_resize_resolution_and_resolution(tmp_path):
    _write_folder(tmp_path / 'big', _random_images(2, size=16))
    path = str(tmp_path / 'big')
    assert ImageFolderDataset(path, resize_resolution=8, resolution=8).resolution == 8
    assert ImageFolderDataset(path, resize_resolution=16, resolution=16).resolution == 16
    _expect_error(r'images are resized to 8x8 \(resize_resolution\) but resolution=16 was requested',
        lambda: ImageFolderDataset(path, resize_resolution=8, resolution=16))
    for bad in (12, 0, -8, 8.0):
        _expect_error(r'resize_resolution=.* is not a power of two', lambda: ImageFolderDataset(path,
            resize_resolution=bad))


def test_resize_resolution_accepts_any_square_size_but_checks_stored_sizes(tmp_path):
    # 12x12 is no training size, but resizing makes it one.
    fnames = _write_folder(tmp_path / 'odd', _random_images(3, size=12))
    dataset = ImageFolderDataset(str(tmp_path / 'odd'), resize_resolution=8)
    assert dataset.image_shape == [3, 8, 8]
    dataset.check_image_sizes()
    # Stored images must still be square and of one size.
    PIL.Image.fromarray(_random_images(1, size=16)[0]).save(tmp_path / 'odd' / fnames[2])
    _expect_error(rf"image '.*{fnames[2]}' is 16x16 but the first image is 12x12", dataset.check_image_sizes)
    _expect_error(rf"image '.*{fnames[2]}' is 3x16x16 \(CxHxW\) but the first image is 3x12x12", lambda: dataset[2])
    os.makedirs(tmp_path / 'wide')
    PIL.Image.new('RGB', (16, 8)).save(tmp_path / 'wide' / 'wide.png')
    _expect_error(r"image '.*wide\.png' is 16x8; training images must be square",
        lambda: ImageFolderDataset(str(tmp_path / 'wide'), resize_resolution=8))


def test_caption_label_errors(tmp_path):
    fnames = _write_folder(tmp_path / 'mixed', _random_images(3), labels=['a cat', 3, 'a dog'])
    _expect_error(rf"gives image '{fnames[1]}' a class index label but image '{fnames[0]}' a caption label",
        lambda: ImageFolderDataset(str(tmp_path / 'mixed'), use_labels=True))

    fnames = _write_folder(tmp_path / 'vector', _random_images(2), labels=[[1.0, 2.0], 'a cat'])
    _expect_error(rf"gives image '{fnames[1]}' a caption label but image '{fnames[0]}' a vector label",
        lambda: ImageFolderDataset(str(tmp_path / 'vector'), use_labels=True))

    fnames = _write_folder(tmp_path / 'partial', _random_images(3), write_json=False)
    with open(tmp_path / 'partial' / 'dataset.json', 'w') as f:
        json.dump({'labels': [[fnames[0], 'a cat'], [fnames[2], 'a dog']]}, f)
    _expect_error(rf"'.*partial/dataset\.json' has no caption for image '{fnames[1]}'",
        lambda: ImageFolderDataset(str(tmp_path / 'partial'), use_labels=True))

    fnames = _write_folder(tmp_path / 'null', _random_images(2), labels=['a cat', None])
    _expect_error(rf"gives image '{fnames[1]}' the label null, which is neither .* nor a caption string",
        lambda: ImageFolderDataset(str(tmp_path / 'null'), use_labels=True))

# ----------------------------------------------------------------------------
# Errors: a DatasetError whose one-line message names the file.


def _expect_error(pattern, fn):
    with pytest.raises(DatasetError, match=pattern) as info:
        fn()
    assert '\n' not in str(info.value)
    return info.value


def test_unreadable_image_is_named(tmp_path):
    fnames = _write_folder(tmp_path / 'broken', _random_images(3))
    (tmp_path / 'broken' / fnames[1]).write_bytes(b'not a png')
    dataset = ImageFolderDataset(str(tmp_path / 'broken'))
    _expect_error(r"cannot read image '.*img00000001\.png': not a recognised image format", lambda: dataset[1])

    # Truncated data fails while decoding; the name survives the trip through a DataLoader worker.
    data = (tmp_path / 'broken' / fnames[0]).read_bytes()
    (tmp_path / 'broken' / fnames[2]).write_bytes(data[:len(data) // 2])
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, [2]), num_workers=1)
    _expect_error(r"cannot read image '.*img00000002\.png'", lambda: list(loader))


def test_mixed_sizes_and_channels_are_named(tmp_path):
    fnames = _write_folder(tmp_path / 'mixed', [_random_images(1, size=8)[0], _random_images(1, size=16)[0],
        _random_images(1, size=8, channels=1)[0]])
    dataset = ImageFolderDataset(str(tmp_path / 'mixed'))
    _expect_error(rf"image '.*{fnames[1]}' is 3x16x16 \(CxHxW\) but the first image is 3x8x8", lambda: dataset[1])
    _expect_error(rf"image '.*{fnames[2]}' is 1x8x8", lambda: dataset[2])


@pytest.mark.parametrize('size, pattern', [((8, 4), r'is 8x4; training images must be square'),
                                           ((12, 12), r'is 12x12; .*power-of-two')])
def test_non_square_or_non_power_of_two_is_refused(tmp_path, size, pattern):
    os.makedirs(tmp_path / 'odd')
    PIL.Image.new('RGB', size).save(tmp_path / 'odd' / 'odd.png')
    _expect_error(r"image '.*odd\.png' " + pattern, lambda: ImageFolderDataset(str(tmp_path / 'odd')))


def test_resolution_must_match(labeled):
    assert ImageFolderDataset(labeled['zip'], resolution=8).resolution == 8
    _expect_error(r"image '.*img00000000\.png' is 8x8 but resolution=16 was requested",
        lambda: ImageFolderDataset(labeled['zip'], resolution=16))


def test_label_file_errors(tmp_path):
    _write_folder(tmp_path / 'nojson', _random_images(2), write_json=False)
    assert ImageFolderDataset(str(tmp_path / 'nojson')).label_dim == 0
    _expect_error(r"labels were requested but '.*nojson/dataset\.json' does not exist",
        lambda: ImageFolderDataset(str(tmp_path / 'nojson'), use_labels=True))

    fnames = _write_folder(tmp_path / 'partial', _random_images(3), labels=[0, 1, 2])
    with open(tmp_path / 'partial' / 'dataset.json', 'w') as f:
        json.dump({'labels': [[fnames[0], 0], [fnames[2], 1]]}, f)
    _expect_error(rf"'.*partial/dataset\.json' has no label for image '{fnames[1]}'",
        lambda: ImageFolderDataset(str(tmp_path / 'partial'), use_labels=True))

    (tmp_path / 'partial' / 'dataset.json').write_text('{"labels": [[')
    _expect_error(r"cannot read '.*partial/dataset\.json'",
        lambda: ImageFolderDataset(str(tmp_path / 'partial'), use_labels=True))

    fnames = _write_folder(tmp_path / 'kinds', _random_images(3), labels=[0, [1.0, 2.0], 1])
    _expect_error(rf"gives image '{fnames[1]}' a vector label but image '{fnames[0]}' a class index label",
        lambda: ImageFolderDataset(str(tmp_path / 'kinds'), use_labels=True))

    fnames = _write_folder(tmp_path / 'lengths', _random_images(2), labels=[[1.0, 2.0], [1.0]])
    _expect_error(rf"gives image '{fnames[1]}' a label of length 1",
        lambda: ImageFolderDataset(str(tmp_path / 'lengths'), use_labels=True))

    fnames = _write_folder(tmp_path / 'negative', _random_images(2), labels=[1, -1])
    _expect_error(rf"gives image '{fnames[1]}' the negative class -1",
        lambda: ImageFolderDataset(str(tmp_path / 'negative'), use_labels=True))


def test_bad_paths(tmp_path):
    _expect_error(r"dataset '.*missing' does not exist", lambda: ImageFolderDataset(str(tmp_path / 'missing')))
    os.makedirs(tmp_path / 'empty')
    (tmp_path / 'empty' / 'readme.txt').write_text('hello')
    _expect_error(r"dataset '.*empty' contains no image files", lambda: ImageFolderDataset(str(tmp_path / 'empty')))
    (tmp_path / 'fake.zip').write_text('not a zip')
    _expect_error(r"dataset '.*fake\.zip' is neither a folder nor a zip archive",
        lambda: ImageFolderDataset(str(tmp_path / 'fake.zip')))
    assert issubclass(DatasetError, OSError) # Callers that catch IOError keep working.

# ----------------------------------------------------------------------------
