"""Export the networks of a pickle as a safetensors weights file: tensors and a JSON description, no code.

Examples:

\b
python export_weights.py --network=network-snapshot-005000.pkl --dest=network-snapshot-005000.safetensors
python gen_images.py --network=network-snapshot-005000.safetensors --seeds=0-3 --outdir=out

Every tool that takes a network pickle takes such a file too. The pickle is read safely (its code is not
run; see docs/security.md); networks of this project's families (StyleGAN2, StyleGAN3, CREPS) can be
exported, official pickles included, and the file loads back to the same weights exactly.
"""

import os

import click

import dnnlib
import dnnlib.cli
import legacy
from training import weights_file


@click.command()
@click.option('network_pkl', '--network', help='Network pickle to export (path or URL)', metavar='PATH|URL', required=True)
@legacy.trust_pickle_option
@click.option('--dest', help='Weights file to write (.safetensors)', metavar='FILE', required=True)
def main(network_pkl, dest):
    """Export the networks of a pickle (G, D, G_ema, augmentation pipe) as a safetensors weights file."""
    dnnlib.cli.check_output_file(dest, '--dest', extensions=('.safetensors',))
    if not dnnlib.util.is_url(network_pkl, allow_file_urls=True) and not os.path.isfile(network_pkl):
        raise click.ClickException(f'--network: no such file: {network_pkl}')
    try:
        with dnnlib.util.open_url(network_pkl, verbose=False) as f:
            data = legacy.load_network_pkl(f)
    except (legacy.NetworkPickleError, dnnlib.util.DownloadError, OSError) as e:
        raise click.ClickException(f'--network: {e}')
    networks = {key: data[key] for key in weights_file.NETWORK_KEYS if data.get(key) is not None}
    os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
    try:
        weights_file.save(dest, networks, training_set_kwargs=data.get('training_set_kwargs'))
    except weights_file.WeightsFileError as e:
        raise click.ClickException(f'--network: {e}')
    except OSError as e:
        raise click.ClickException(f'--dest: cannot write {dest}: {e.strerror or e}')
    print(f'Wrote {", ".join(networks)} to {dest}')


if __name__ == '__main__':
    main()
