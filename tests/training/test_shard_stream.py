"""Streaming tar shards (training/shards.py, training.dataset.ShardDataset): which samples a pass delivers, over
processes and data workers, as the training loop opens them."""

import collections
import json
import os
import tempfile

import numpy as np
import pytest
import torch

import shard_fixtures
from training import dataset as dataset_module
from training import shards
from training import training_loop

pytest.importorskip('webdataset')


@pytest.fixture(scope='module')
def shard_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp('shards')
    return shard_fixtures.build(folder, num_shards=4, per_shard=6, corrupt=(1, 2))


def _kwargs(folder, **overrides):
    return dict(dict(class_name='training.dataset.ShardDataset', path=folder, resolution=16, shuffle_buffer=4),
                **overrides)


def test_finds_finished_shards_only(shard_folder):
    finished, unfinished = shards.find_shards(shard_folder['folder'])
    assert [os.path.relpath(p, shard_folder['folder']) for p in finished] == \
        ['cc3m/00000.tar', 'cc3m/00002.tar', 'laion/00001.tar', 'laion/00003.tar']
    assert [os.path.relpath(p, shard_folder['folder']) for p in unfinished] == ['cc3m/00004.tar']
    data = dataset_module.ShardDataset(path=shard_folder['folder'], resolution=16)
    assert data.nominal_size == 24 and data.image_shape == [3, 16, 16] and data.has_captions


def test_one_pass_delivers_every_usable_sample_once(shard_folder):
    data = dataset_module.ShardDataset(path=shard_folder['folder'], resolution=16, shuffle_buffer=3)
    seen, skipped = collections.Counter(), 0
    stream = iter(data.stream(rank=0, num_ranks=1, seed=5))
    while True:
        image, caption, info = next(stream)
        if info['pass'] != 0:
            break
        assert image.shape == (3, 16, 16) and image.dtype == np.uint8
        assert shard_folder['good'][info['key']] == caption
        seen[info['key']] += 1
        skipped += info['skipped']
    assert set(seen) == set(shard_folder['good']) and max(seen.values()) == 1
    assert skipped == len(shard_folder['corrupt']) == 1


def test_shuffles_differ_by_seed_and_pass(shard_folder):
    data = dataset_module.ShardDataset(path=shard_folder['folder'], resolution=16, shuffle_buffer=4)
    def keys(seed, count=46):
        stream = iter(data.stream(seed=seed))
        return [next(stream)[2]['key'] for _ in range(count)]
    first = keys(0)
    assert first == keys(0)
    assert first != keys(1)
    assert first[:23] != first[23:]  # The second pass comes in another order.
    assert sorted(first[:23]) == sorted(first[23:])


def test_centre_crop_and_resize(tmp_path):
    wide = np.zeros([20, 40, 3], dtype=np.uint8)
    wide[:, 10:30] = 255  # The central square is white; the sides black.
    import PIL.Image
    encoded = tmp_path / 'wide.png'
    PIL.Image.fromarray(wide).save(encoded)
    shard_fixtures.write_shard(str(tmp_path / 'a' / '00000.tar'),
                               [dict(key='0', caption='white', image=encoded.read_bytes(), ext='png')])
    data = dataset_module.ShardDataset(path=str(tmp_path / 'a'), resolution=8)
    images, labels = data.peek(2)
    assert labels == ['white', 'white'] and images.shape == (2, 3, 8, 8)
    assert images.min() >= 250


def test_refuses_folder_without_finished_shards(tmp_path):
    shard_fixtures.write_shard(str(tmp_path / 'x' / '00000.tar'), [dict(key='0', caption='c',
                               image=shard_fixtures.image_bytes((1, 2, 3)))], finished=False)
    with pytest.raises(dataset_module.DatasetError, match='no finished shards.*_stats.json'):
        dataset_module.ShardDataset(path=str(tmp_path / 'x'), resolution=16)


def test_random_captions_come_from_the_shards(shard_folder):
    data = dataset_module.ShardDataset(path=shard_folder['folder'], resolution=16)
    captions = data.random_captions(10, seed=3)
    assert len(captions) == 10 and len(set(captions)) > 1
    assert all(caption.startswith('sample ') and not caption.startswith('sample 4-') for caption in captions)
    assert captions == data.random_captions(10, seed=3)

# ----------------------------------------------------------------------------
# Two gloo processes with two data workers each, through the training loop's own loader.


def _record_rank(rank, folder, init_file, out_dir, num_batches):
    torch.distributed.init_process_group(backend='gloo', init_method=f'file://{init_file}', rank=rank, world_size=2)
    try:
        _training_set, data_iter = training_loop.open_training_data(
            training_set_kwargs=_kwargs(folder), data_loader_kwargs=dict(num_workers=2), random_seed=0, num_gpus=2,
            rank=rank, batch_size=4, start_index=0)
        records = []
        for _ in range(num_batches):
            images, captions, info = next(data_iter)
            assert images.shape == (2, 3, 16, 16)
            records += [dict(key=key, caption=caption, pass_idx=int(pass_idx), skipped=int(skipped))
                        for key, caption, pass_idx, skipped in zip(info['key'], captions, info['pass'], info['skipped'])]
        with open(os.path.join(out_dir, f'rank{rank}.json'), 'w') as f:
            json.dump(records, f)
    finally:
        torch.distributed.destroy_process_group()


def test_two_processes_split_the_shards(shard_folder):
    with tempfile.TemporaryDirectory() as temp:
        # 4 readers (2 processes x 2 workers), one 6-sample shard each: 12 batches of 2 per process are two passes.
        torch.multiprocessing.spawn(_record_rank, args=(shard_folder['folder'], os.path.join(temp, 'init'), temp, 12),
                                    nprocs=2)
        records = {rank: json.load(open(os.path.join(temp, f'rank{rank}.json'))) for rank in range(2)}
    shard_of = lambda key: key.rsplit('/', 1)[0]  # noqa: E731
    rank_shards = {rank: {shard_of(r['key']) for r in recs} for rank, recs in records.items()}
    assert not rank_shards[0] & rank_shards[1]  # No shard is read by both processes.
    all_records = records[0] + records[1]
    first_pass = collections.Counter(r['key'] for r in all_records if r['pass_idx'] == 0)
    assert set(first_pass) == set(shard_folder['good'])  # Every finished shard's samples...
    assert max(first_pass.values()) == 1  # ... once per pass.
    per_pass = collections.Counter((r['key'], r['pass_idx']) for r in all_records)
    assert max(per_pass.values()) == 1
    assert not {r['key'] for r in all_records} & set(shard_folder['unfinished'])
    assert all(shard_folder['good'][r['key']] == r['caption'] for r in all_records)
    assert sum(r['skipped'] for r in all_records) >= 1  # The corrupt sample, skipped and counted.


def test_a_folder_of_images_with_a_stray_archive_is_not_a_shard_folder(tmp_path):
    (tmp_path / 'shards').mkdir()
    (tmp_path / 'shards' / '00000.tar').write_bytes(b'')
    (tmp_path / 'shards' / '00000_stats.json').write_text('{}')
    assert shards.holds_shards(str(tmp_path / 'shards'))
    (tmp_path / 'images' / 'sub').mkdir(parents=True)
    (tmp_path / 'images' / 'backup.tar').write_bytes(b'')
    (tmp_path / 'images' / 'sub' / 'cat.PNG').write_bytes(b'')
    assert not shards.holds_shards(str(tmp_path / 'images'))
