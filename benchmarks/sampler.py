"""Start-up of the training data stream when a run continues at a late position, against replaying it.

    python benchmarks/sampler.py [--dataset-size 70000] [--kimg 1000,25000]

A continued run starts its sampler at the position the interrupted run had reached (batch index times
batch size). misc.InfiniteSampler(start_index=...) computes that position's epoch order from the seed and
the epoch number; the reference is a replay: iterating the same sampler from position 0 and dropping
every item already seen (what the training loop did before). Both give the same next items (checked).
The replay is timed at the smallest position given and extrapolated linearly to the others.
"""

import argparse
import itertools
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from torch_utils import misc  # noqa: E402


class _Sized:
    def __init__(self, size):
        self.size = size

    def __len__(self):
        return self.size


def seconds_to_first_items(dataset, start, replay, count=64):
    begin = time.perf_counter()
    if replay:
        items = list(itertools.islice(iter(misc.InfiniteSampler(dataset, seed=0)), start, start + count))
    else:
        items = list(itertools.islice(iter(misc.InfiniteSampler(dataset, seed=0, start_index=start)), count))
    return time.perf_counter() - begin, items


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--dataset-size', type=int, default=70000, help='images in the dataset (FFHQ: 70000)')
    parser.add_argument('--kimg', default='1000,25000', help='comma-separated positions, in thousands of images')
    args = parser.parse_args()
    dataset = _Sized(args.dataset_size)
    positions = [int(float(k) * 1000) for k in args.kimg.split(',')]

    replay_seconds, replay_items = seconds_to_first_items(dataset, positions[0], replay=True)
    direct_seconds, direct_items = seconds_to_first_items(dataset, positions[0], replay=False)
    assert direct_items == replay_items, 'the direct start and the replay disagree'
    per_item = replay_seconds / positions[0]
    print(f'dataset of {args.dataset_size} images; replay measured at {positions[0] // 1000} kimg: '
          f'{replay_seconds:.2f} s ({per_item * 1e9:.0f} ns per item)')
    print(f'{"position":>10s} {"direct start":>13s} {"replay":>12s} {"speed-up":>10s}')
    for position in positions:
        seconds, _ = seconds_to_first_items(dataset, position, replay=False)
        replay = replay_seconds if position == positions[0] else per_item * position
        note = '' if position == positions[0] else ' (extrapolated)'
        print(f'{position // 1000:>7d} kimg {seconds * 1e3:10.1f} ms {replay:10.1f} s {replay / seconds:9.0f}x{note}')


if __name__ == '__main__':
    main()
