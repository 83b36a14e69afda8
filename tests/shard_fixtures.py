"""Small webdataset folders in img2dataset's layout, written by tests: `<folder>/<source>/NNNNN.tar` with
samples KEY.jpg|png|webp + KEY.txt + KEY.json, and `NNNNN_stats.json` beside each finished shard."""

import io
import json
import os
import tarfile

import numpy as np
import PIL.Image


def image_bytes(rgb, size=(24, 20), fmt='JPEG'):
    """An image of one colour (non-square, so that centre cropping matters) encoded as `fmt`."""
    image = PIL.Image.new('RGB', size, tuple(int(v) for v in rgb))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def _add(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    tar.addfile(info, io.BytesIO(data))


def write_shard(path, samples, finished=True):
    """One shard of `samples`: dicts {key, caption (None: no .txt), image (bytes; None: no image), ext}."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tarfile.open(path, 'w') as tar:
        for sample in samples:
            key = sample['key']
            if sample.get('image') is not None:
                _add(tar, f'{key}.{sample.get("ext", "jpg")}', sample['image'])
            if sample.get('caption') is not None:
                _add(tar, f'{key}.txt', sample['caption'].encode('utf-8'))
            _add(tar, f'{key}.json', json.dumps(dict(key=key, status='success')).encode())
    if finished:
        stats = dict(count=len(samples), successes=len(samples), failed_to_download=0, failed_to_resize=0)
        with open(os.path.splitext(path)[0] + '_stats.json', 'w') as f:
            json.dump(stats, f)


def build(folder, num_shards=4, per_shard=6, corrupt=(1, 2), unfinished=True, sources=('cc3m', 'laion'), seed=0):
    """A folder of shards spread over `sources` subfolders; shard i holds `per_shard` samples whose colours
    and captions are unique. `corrupt` = (shard, sample) whose image bytes are garbage; `unfinished` adds a
    shard without its stats file. Returns EasyDict-like dict(good={key: caption}, corrupt=[keys],
    unfinished=[keys], folder)."""
    rng = np.random.RandomState(seed)
    good, bad, never = {}, [], []
    corrupt = set([corrupt] if corrupt and isinstance(corrupt[0], int) else corrupt or [])
    formats = [('jpg', 'JPEG'), ('png', 'PNG'), ('webp', 'WEBP')]
    for shard_idx in range(num_shards + (1 if unfinished else 0)):
        source = sources[shard_idx % len(sources)]
        is_unfinished = shard_idx == num_shards
        rel = f'{source}/{shard_idx:05d}.tar'
        samples = []
        for sample_idx in range(per_shard):
            key = f'{shard_idx:05d}{sample_idx:04d}'
            ext, fmt = formats[(shard_idx + sample_idx) % len(formats)]
            caption = f'sample {shard_idx}-{sample_idx} colour {rng.randint(1000)}'
            data = image_bytes(rng.randint(0, 256, size=3), fmt=fmt)
            if (shard_idx, sample_idx) in corrupt:
                data = b'not an image at all' * 4
                bad.append(f'{rel}/{key}')
            elif is_unfinished:
                never.append(f'{rel}/{key}')
            else:
                good[f'{rel}/{key}'] = caption
            samples.append(dict(key=key, caption=caption, image=data, ext=ext))
        write_shard(os.path.join(folder, rel), samples, finished=not is_unfinished)
    return dict(good=good, corrupt=bad, unfinished=never, folder=str(folder))
