"""Style-mixing grid with the options of StyleGAN2-ADA's style_mixing.py, e.g.

    python style_mixing.py --outdir=out --rows=85,100,75,458,1500 --cols=55,821,1789,293 \\
        --network=https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metfaces.pkl

Each tile of grid.png is a row seed whose style inputs (ws) at --styles come from a column seed; the
top row shows the column seeds, the left column the row seeds, and the top-left corner the image of
w_avg, the point truncation pulls toward. Every tile is also written alone as <row>-<col>.png (a
seed's own image as <seed>-<seed>.png).
"""

import os

import click

import dnnlib.cli
import gen_images
import legacy


@click.command()
@click.option('network_pkl', '--network', help='Network pickle to sample from (path or URL)', metavar='PATH|URL', required=True)
@legacy.trust_pickle_option
@click.option('row_seeds', '--rows', type=gen_images.parse_seeds, help='Seeds of the rows, e.g. 0-3,7', metavar='LIST', required=True)
@click.option('col_seeds', '--cols', type=gen_images.parse_seeds, help='Seeds of the columns', metavar='LIST', required=True)
@click.option('col_styles', '--styles', type=gen_images.parse_range, help='Style inputs (ws) taken from the column seed', default='0-6', show_default=True, metavar='LIST')
@click.option('--trunc', 'truncation_psi', type=dnnlib.cli.FiniteFloat(), help='Truncation psi', default=1, show_default=True)
@click.option('--class', 'class_idx', type=click.IntRange(min=0), help='Class index for conditional networks')
@click.option('--noise-mode', help='Per-pixel noise inputs: stored, fresh, or off', type=click.Choice(['const', 'random', 'none']), default='const', show_default=True)
@click.option('--outdir', help='Folder for grid.png and the tiles (created if needed)', type=str, required=True, metavar='DIR')
def generate_style_mix(network_pkl, row_seeds, col_seeds, col_styles, truncation_psi, class_idx, noise_mode, outdir):
    """Render a style-mixing grid: row seeds, with the column seeds' styles at --styles."""
    dnnlib.cli.check_output_dir(outdir, '--outdir')
    device = gen_images.choose_device(verbose=False)
    G = gen_images.load_generator(network_pkl, device)
    gen_images.check_layers(G, col_styles, '--styles')
    label = gen_images.make_label(G, class_idx, device)
    gen_images.report_device(device)
    tiles = dict()
    grid = gen_images.style_mixing_grid(G, row_seeds, col_seeds, col_styles, label, truncation_psi=truncation_psi,
                                        noise_mode=noise_mode, force_fp32=(device.type != 'cuda'), tiles_out=tiles)
    os.makedirs(outdir, exist_ok=True)
    print('Saving images...')
    try:
        for (row_seed, col_seed), tile in tiles.items():
            gen_images.save_image(tile, os.path.join(outdir, f'{row_seed}-{col_seed}.png'))
        print('Saving image grid...')
        gen_images.save_image(grid, os.path.join(outdir, 'grid.png'))
    except OSError as e:
        raise click.ClickException(f'--outdir: cannot write in {outdir}: {e.strerror or e}') from None


if __name__ == '__main__':
    generate_style_mix()
