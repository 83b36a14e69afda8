"""CPU timings of every generator, default ops against impl='ref' ops, each also as a multiple of its floor.

Usage: python benchmarks/networks.py [--repeats 3] [--threads 2]

Runs benchmarks/networks_sg2.py (StyleGAN2 64x64, channel_base 8192, channel_max 256: G forward and a
G+D forward/backward step) and benchmarks/networks_sg3.py (StyleGAN3-T 64x64 with channel_base 8192,
channel_max 256, and StyleGAN3-R with 16384/512: G forward and a G+D forward/backward step) and
benchmarks/networks_creps.py (CREPS 64x64 with 16384/512, against its op-by-op reference formulation: G
forward at scales 1, 2 and 4 with its peak memory, and a G+D forward/backward step) and
benchmarks/networks_stylegan_t.py (StyleGAN-T's lite G at 64x64 with 8192/256 and D on DINO ViT-S/16: G
forward and a G+D forward/backward step), batch 4, one after the other in separate processes so none
inherits another's caches. Each prints its own table.
"""

import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeats', type=int, default=3, help='timed runs per measurement (median reported)')
    parser.add_argument('--threads', type=int, default=2, help='torch.set_num_threads')
    args = parser.parse_args()
    env = dict(os.environ, PYTHONPATH=os.path.dirname(HERE) + os.pathsep + os.environ.get('PYTHONPATH', ''))
    status = 0
    for script in ('networks_sg2.py', 'networks_sg3.py', 'networks_creps.py', 'networks_stylegan_t.py'):
        print(f'=== {script}', flush=True)
        command = [sys.executable, os.path.join(HERE, script), '--repeats', str(args.repeats), '--threads', str(args.threads)]
        status |= subprocess.run(command, env=env).returncode
    sys.exit(status)


if __name__ == '__main__':
    main()
