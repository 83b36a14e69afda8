"""Samples per second of the streaming tar-shard loader (training.dataset.ShardDataset) against the zip loader
(ImageFolderDataset with a sampler) on the same images, both through a DataLoader as train.py builds them.

    python benchmarks/streaming.py [--images 2000] [--size 256] [--resolution 64] [--workers 2] [--batches 160]

The images (smooth random colour fields, JPEG-encoded once) go into img2dataset-style shards and into a zip
with the same JPEG bytes, so both loaders decode the same files and resize them to --resolution with Lanczos
(the stream also centre-crops, a no-op for square images); what differs is how they read. Each loader is
timed from its first batch request over --batches batches of --batch images, start-up included: the stream's
shuffle buffer fills first and is emptied at each pass's end, so only whole passes give its true rate (the
default covers about 2.5 passes).
"""

import argparse
import io
import json
import os
import sys
import tarfile
import tempfile
import time
import zipfile

import numpy as np
import PIL.Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from torch_utils import misc  # noqa: E402
from training import dataset as dataset_module  # noqa: E402


def smooth_jpeg(rng, size):
    """A JPEG of a low-frequency colour field: compresses like a photo, unlike white noise."""
    coarse = rng.randint(0, 256, size=[8, 8, 3]).astype(np.uint8)
    image = PIL.Image.fromarray(coarse).resize((size, size), PIL.Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, format='JPEG', quality=90)
    return buffer.getvalue()


def write_both(folder, count, size, per_shard=500, seed=0):
    """(shard folder, zip path) holding the same `count` JPEGs with captions."""
    rng = np.random.RandomState(seed)
    images = [smooth_jpeg(rng, size) for _ in range(count)]
    shard_dir = os.path.join(folder, 'shards', 'synthetic')
    os.makedirs(shard_dir)
    for first in range(0, count, per_shard):
        stem = os.path.join(shard_dir, f'{first // per_shard:05d}')
        with tarfile.open(stem + '.tar', 'w') as tar:
            for idx in range(first, min(first + per_shard, count)):
                for name, data in [(f'{idx:09d}.jpg', images[idx]), (f'{idx:09d}.txt', f'image {idx}'.encode())]:
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        with open(stem + '_stats.json', 'w') as f:
            json.dump(dict(successes=min(per_shard, count - first)), f)
    zip_path = os.path.join(folder, 'same.zip')
    with zipfile.ZipFile(zip_path, 'w', compression=zipfile.ZIP_STORED) as archive:
        for idx, data in enumerate(images):
            archive.writestr(f'{idx:09d}.jpg', data)
        labels = [[f'{idx:09d}.jpg', f'image {idx}'] for idx in range(count)]
        archive.writestr('dataset.json', json.dumps(dict(labels=labels)))
    return os.path.join(folder, 'shards'), zip_path


def samples_per_second(loader, batches):
    start = time.perf_counter()
    iterator = iter(loader)
    seen = 0
    for _ in range(batches):
        seen += next(iterator)[0].shape[0]
    return seen / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--images', type=int, default=2000, help='images in each dataset')
    parser.add_argument('--size', type=int, default=256, help='stored image side')
    parser.add_argument('--resolution', type=int, default=64, help='side the loaders deliver')
    parser.add_argument('--workers', type=int, default=2, help='DataLoader workers')
    parser.add_argument('--batch', type=int, default=32, help='images per batch')
    parser.add_argument('--batches', type=int, default=160, help='timed batches per loader')
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as temp:
        print(f'Writing {args.images} {args.size}x{args.size} JPEGs as shards and as a zip...')
        shard_dir, zip_path = write_both(temp, args.images, args.size)
        loader_kwargs = dict(batch_size=args.batch, num_workers=args.workers)
        zipped = dataset_module.ImageFolderDataset(path=zip_path, resize_resolution=args.resolution, use_labels=True)
        sampler = misc.InfiniteSampler(dataset=zipped, seed=0)
        zip_rate = samples_per_second(torch.utils.data.DataLoader(zipped, sampler=sampler, **loader_kwargs), args.batches)
        streamed = dataset_module.ShardDataset(path=shard_dir, resolution=args.resolution)
        stream_rate = samples_per_second(torch.utils.data.DataLoader(streamed.stream(), **loader_kwargs), args.batches)

    print()
    print(f'{args.batches} batches of {args.batch}, {args.workers} workers, {args.size} px -> {args.resolution} px, '
          f'torch {torch.__version__}, {os.cpu_count()} CPUs')
    print(f'{"loader":<28} {"samples/s":>10}')
    print(f'{"zip (ImageFolderDataset)":<28} {zip_rate:>10.1f}   reference')
    print(f'{"tar shards (ShardDataset)":<28} {stream_rate:>10.1f}   {stream_rate / zip_rate:.2f}x')


if __name__ == '__main__':
    main()
