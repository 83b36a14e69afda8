"""Average 2-D power spectra of a dataset or a generator, as in the spectral analysis of the
StyleGAN3 paper ("Alias-Free Generative Adversarial Networks", Figure 5 and Appendix), e.g.

    # Mean and standard deviation of the training data (used to normalise both spectra alike).
    python avg_spectra.py stats --source=~/datasets/ffhq-1024x1024.zip

    # Spectra of the training data and of a generator.
    python avg_spectra.py calc --source=~/datasets/ffhq-1024x1024.zip --dest=tmp/training-data.npz --mean=112.684 --std=69.509
    python avg_spectra.py calc --source=stylegan3-r-ffhq-1024x1024.pkl --dest=tmp/stylegan3-r.npz --mean=112.684 --std=69.509 --num=70000

    # Plots: a heatmap of one spectrum, and horizontal/diagonal slices of several.
    python avg_spectra.py heatmap tmp/training-data.npz --save=heatmap.png
    python avg_spectra.py slices tmp/training-data.npz tmp/stylegan3-r.npz --save=slices.png
"""

import os
import sys

import click
import numpy as np
import scipy.ndimage
import torch
import tqdm

import dnnlib
import dnnlib.cli
import gen_images
import legacy
from training.dataset import DatasetError, ImageFolderDataset

# ----------------------------------------------------------------------------
# Image sources: uint8 NCHW batches from a dataset or a generator.

BATCH_SIZE = 16


def expand_path(path):
    """A local path with ~ expanded (shells leave the ~ of '--dest=~/x' alone); URLs and None unchanged."""
    return path if path is None or dnnlib.util.is_url(path) else os.path.expanduser(path)


def is_network_source(source):
    return dnnlib.util.is_url(source, allow_file_urls=True) or source.lower().endswith('.pkl')


def open_source(source, num, seed, device, batch_size=BATCH_SIZE, num_workers=0):
    """Returns (number of images, image resolution, iterator over uint8 [N, C, H, W] batches on `device`).

    Datasets yield all their images, or a random subset of `num` fixed by `seed`; generators yield
    `num` images from latents (and, if conditional, classes) drawn with `seed`.
    """
    if is_network_source(source):
        if num is None:
            raise click.ClickException('--num is required when --source is a network pickle')
        G = gen_images.load_generator(source, device, option='--source')
        return num, G.img_resolution, _generator_batches(G, num, seed, device, batch_size)

    if not os.path.exists(source):
        raise click.ClickException(f'--source: no such dataset or network pickle: {source}')
    try:
        dataset = ImageFolderDataset(path=source, max_size=num, random_seed=seed)
    except DatasetError as e:
        raise click.ClickException(f'--source: {e}')
    if num is not None and num > len(dataset):
        print(f'warn: --num={num} but the dataset has only {len(dataset)} images; using all of them', file=sys.stderr)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=num_workers)
    return len(dataset), dataset.resolution, _dataset_batches(loader, device)


def _dataset_batches(loader, device):
    try:
        for images, _labels in loader:
            yield images.to(device)
    except DatasetError as e:  # A corrupt image in the middle of the dataset.
        raise click.ClickException(f'--source: {e}')


def _generator_batches(G, num, seed, device, batch_size):
    rnd = np.random.RandomState(seed)
    torch.manual_seed(seed)  # For the noise inputs.
    force_fp32 = (device.type != 'cuda')
    for start in range(0, num, batch_size):
        count = min(batch_size, num - start)
        z = torch.from_numpy(rnd.randn(count, G.z_dim).astype(np.float32)).to(device)
        c = torch.zeros([count, G.c_dim], device=device)
        if G.c_dim > 0:
            c[torch.arange(count), torch.from_numpy(rnd.randint(G.c_dim, size=count)).to(device)] = 1
        img = G(z, c, noise_mode='random', force_fp32=force_fp32)
        yield gen_images.images_to_uint8(img).permute(0, 3, 1, 2)

# ----------------------------------------------------------------------------
# Statistics and spectra.


def pixel_moments(batches):
    """Mean and standard deviation of all pixel values (0..255) of all images."""
    moments = torch.zeros([3], dtype=torch.float64)
    for images in batches:
        x = images.to(torch.float64)
        moments += torch.stack([torch.tensor(float(x.numel()), dtype=torch.float64), x.sum().cpu(), x.square().sum().cpu()])
    count, total, total_sq = moments.tolist()
    mean = total / count
    return mean, max(total_sq / count - mean ** 2, 0.0) ** 0.5


def kaiser_window_2d(image_size, beta, device):
    """Separable 2-D Kaiser window [image_size, image_size] with unit energy (sum of squares 1)."""
    window = torch.kaiser_window(image_size, periodic=False, beta=beta, dtype=torch.float64, device=device)
    window = window / window.square().sum().sqrt()
    return torch.outer(window, window)


def power_spectrum_sum(images, mean, std, window, spectrum_size):
    """Sum over images of the channel-averaged |FFT|^2 of the normalised, windowed, zero-padded images."""
    image_size = window.shape[0]
    x = (images.to(torch.float64) - mean) / std * window
    padding = spectrum_size - image_size
    x = torch.nn.functional.pad(x, [0, padding, 0, padding])
    return torch.fft.fftn(x, dim=[2, 3]).abs().square().mean(dim=1).sum(dim=0)


def average_spectrum(batches, image_size, mean, std, beta, interp, device):
    """[S, S] float64 average power spectrum (S = image_size * interp; unshifted: DC at [0, 0])."""
    spectrum_size = image_size * interp
    window = kaiser_window_2d(image_size, beta, device)
    spectrum = torch.zeros([spectrum_size, spectrum_size], dtype=torch.float64, device=device)
    chunk = max(1, 2 ** 24 // (3 * spectrum_size ** 2))  # Keeps the complex FFT buffers to a few hundred MB.
    num_images = 0
    for images in batches:
        for part in images.split(chunk):
            spectrum += power_spectrum_sum(part, mean, std, window, spectrum_size)
            num_images += part.shape[0]
    if num_images == 0:
        raise click.ClickException('--source yielded no images')
    return (spectrum / num_images).cpu().numpy()


def load_spectrum(path):
    """(spectrum [S, S], image_size) from a file written by `calc`."""
    try:
        with np.load(path) as data:
            return data['spectrum'], int(data['image_size'])
    except (OSError, ValueError, KeyError) as e:
        raise click.ClickException(f'cannot read spectrum file {path}: {e}')

# ----------------------------------------------------------------------------
# Plotting.


def get_pyplot(save):
    """matplotlib.pyplot, with the file-only Agg backend when saving; refuses to show without a display."""
    import matplotlib
    if save is not None:
        matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    if save is None:
        backend = matplotlib.get_backend().lower()
        try:
            from matplotlib.backends import BackendFilter, backend_registry
            non_interactive = backend_registry.list_builtin(BackendFilter.NON_INTERACTIVE)
        except ImportError:  # matplotlib < 3.9.
            from matplotlib import rcsetup
            non_interactive = [name.lower() for name in rcsetup.non_interactive_bk]
        headless_linux = sys.platform.startswith('linux') and not (os.environ.get('DISPLAY') or os.environ.get('WAYLAND_DISPLAY'))
        if backend in non_interactive or (headless_linux and not backend.startswith('module://')):
            raise click.ClickException('there is no display to show the plot on; use --save=FILE.png to write it to a file')
    return plt


PLOT_FORMATS = ('.png', '.pdf', '.svg', '.jpg', '.jpeg', '.eps', '.ps', '.tif', '.tiff', '.webp')  # What matplotlib writes.


def check_save(save):
    """Refuses (before any work) a --save file that cannot be written or whose format is not known."""
    if save is not None:
        dnnlib.cli.check_output_file(save, '--save', extensions=PLOT_FORMATS)


def finish_plot(plt, save):
    if save is None:
        plt.show()
        return
    os.makedirs(os.path.dirname(os.path.abspath(save)), exist_ok=True)
    extension = os.path.splitext(save)[1]
    with dnnlib.util.atomic_path(save, suffix=extension) as tmp_path:
        plt.savefig(tmp_path, format=extension[1:].lower())
    print(f'Saved {save}')


def to_decibels(spectrum):
    return 10 * np.log10(np.maximum(spectrum, 1e-30))


def centred_decibels(spectrum, image_size, smooth):
    """The spectrum in dB with zero frequency in the middle, one row and column longer so that both Nyquist
    edges appear, blurred by a Gaussian of `smooth` frequency bins of the image (0: none), as the official
    plots show it."""
    db = np.pad(to_decibels(np.fft.fftshift(spectrum)), [(0, 1), (0, 1)], mode='wrap')
    if smooth > 0:
        db = scipy.ndimage.gaussian_filter(db, sigma=smooth * spectrum.shape[0] / image_size, mode='nearest')
    return db


def plot_heatmap(plt, spectrum, image_size, smooth, dpi):
    """Filled dB contours (-40 to 20 in steps of 5) over frequencies in cycles per image, Nyquist at the edges."""
    db = centred_decibels(spectrum, image_size, smooth)
    freqs = np.linspace(-image_size / 2, image_size / 2, db.shape[0])
    levels = np.arange(-40, 21, 5)
    ticks = np.linspace(-image_size / 2, image_size / 2, 5)
    plt.figure(figsize=[6, 4.8], dpi=dpi, tight_layout=True)
    plt.contourf(freqs, freqs, db, levels=levels, extend='both', cmap='Blues')
    plt.colorbar(ticks=levels)
    plt.contour(freqs, freqs, db, levels=levels, colors='midnightblue', linestyles='solid', linewidths=1, alpha=0.2)
    axes = plt.gca()
    axes.set_aspect('equal')
    axes.set_xlim(ticks[0], ticks[-1])
    axes.set_ylim(ticks[0], ticks[-1])
    axes.set_xticks(ticks)
    axes.set_yticks(ticks)


def spectrum_slices(spectrum, image_size, smooth=0):
    """Horizontal (through DC) and diagonal 1-D slices, from DC to Nyquist: ((freqs, dB), (freqs, dB))."""
    db = centred_decibels(spectrum, image_size, smooth)
    centre = spectrum.shape[0] // 2
    k = np.arange(centre, db.shape[0])
    freqs = (k - centre) * image_size / spectrum.shape[0]
    return (freqs, db[centre, k]), (freqs * np.sqrt(2), db[k, k])


def plot_slices(plt, spectra, smooth, dpi):
    """spectra: [(label, spectrum, image_size)]; the 0 and 45 degree slices side by side, one line per file."""
    plt.figure(figsize=[12, 4.6], dpi=dpi, tight_layout=True)
    slices = [(label, spectrum_slices(spectrum, image_size, smooth)) for label, spectrum, image_size in spectra]
    for panel, (title, scale) in enumerate([('0\u00b0 slice', 1), ('45\u00b0 slice', np.sqrt(2))]):
        plt.subplot(1, 2, panel + 1)
        plt.title(title)
        for label, cuts in slices:
            freqs, db = cuts[panel]
            plt.plot(freqs, db, label=label)
        top = max(image_size for _label, _spectrum, image_size in spectra) / 2 * scale
        xticks = np.linspace(0, top, 9)
        plt.xticks(np.round(xticks) if scale != 1 else xticks)
        plt.xlim(0, top)
        plt.yticks(np.linspace(-50, 30, 9))
        plt.ylim(-50, 30)
        plt.grid()
        plt.legend(loc='upper right')

# ----------------------------------------------------------------------------
# Command line.


@click.group()
def main():
    """Average power spectra of training images and generators (StyleGAN3 paper, Figure 5).

    \b
    Typical use: 'stats' on the dataset gives --mean and --std; 'calc' with those
    values on the dataset and on each network gives comparable spectra; 'heatmap'
    and 'slices' plot them (on screen, or to a PNG with --save).
    \b
    python avg_spectra.py stats --source=~/datasets/ffhq-1024x1024.zip
    python avg_spectra.py calc --source=~/datasets/ffhq-1024x1024.zip \\
        --dest=tmp/training-data.npz --mean=112.684 --std=69.509
    python avg_spectra.py calc --source=stylegan3-r-ffhq-1024x1024.pkl \\
        --dest=tmp/stylegan3-r.npz --mean=112.684 --std=69.509 --num=70000
    python avg_spectra.py heatmap tmp/training-data.npz --save=heatmap.png
    python avg_spectra.py slices tmp/training-data.npz tmp/stylegan3-r.npz --save=slices.png
    """


@main.command()
@click.option('--source', help='Dataset (zip or folder) or network pickle', metavar='[PKL|ZIP|DIR]', required=True)
@click.option('--num', help='Images to use (a random subset of a dataset)  [default: all; required for networks]', metavar='INT', type=click.IntRange(min=1))
@click.option('--seed', help='Seed that picks the subset or the latents', metavar='INT', type=click.IntRange(min=0), default=0, show_default=True)
@click.option('--workers', help='DataLoader worker processes (datasets only)', type=click.IntRange(min=0), default=3, show_default=True)
@legacy.trust_pickle_option
def stats(source, num, seed, workers):
    """Print the pixel mean and standard deviation (0..255) to pass to 'calc'."""
    source = expand_path(source)
    device = gen_images.choose_device(verbose=False)
    num_images, _image_size, batches = open_source(source, num, seed, device, num_workers=workers)
    if is_network_source(source):
        gen_images.report_device(device)
    batches = tqdm.tqdm(batches, total=-(-num_images // BATCH_SIZE), unit='batch', disable=None)
    mean, std = pixel_moments(batches)
    print(f'--mean={mean:g} --std={std:g}')


@main.command()
@click.option('--source', help='Dataset (zip or folder) or network pickle', metavar='[PKL|ZIP|DIR]', required=True)
@click.option('--dest', help='Output file for the spectrum', metavar='NPZ', required=True)
@click.option('--mean', help='Pixel mean subtracted before the FFT (from \'stats\')', metavar='FLOAT', type=dnnlib.cli.FiniteFloat(), required=True)
@click.option('--std', help='Pixel standard deviation divided out before the FFT (from \'stats\')', metavar='FLOAT', type=dnnlib.cli.FiniteFloat(min=0, min_open=True), required=True)
@click.option('--num', help='Images to use (a random subset of a dataset)  [default: all; required for networks]', metavar='INT', type=click.IntRange(min=1))
@click.option('--seed', help='Seed that picks the subset or the latents', metavar='INT', type=click.IntRange(min=0), default=0, show_default=True)
@click.option('--beta', help='Kaiser window beta (larger: less leakage, lower resolution)', metavar='FLOAT', type=dnnlib.cli.FiniteFloat(min=0), default=8, show_default=True)
@click.option('--interp', help='Zero-pad the images to this multiple of their size', metavar='INT', type=click.IntRange(min=1), default=4, show_default=True)
@click.option('--workers', help='DataLoader worker processes (datasets only)', type=click.IntRange(min=0), default=3, show_default=True)
@legacy.trust_pickle_option
def calc(source, dest, mean, std, num, seed, beta, interp, workers):
    """Average the 2-D power spectrum of the images and write it to an .npz file."""
    source, dest = expand_path(source), expand_path(dest)
    if not dest.lower().endswith('.npz') and not os.path.isdir(dest):
        dest += '.npz'  # As numpy.savez names it.
    dnnlib.cli.check_output_file(dest, '--dest', extensions=('.npz',))
    device = gen_images.choose_device(verbose=False)
    num_images, image_size, batches = open_source(source, num, seed, device, num_workers=workers)
    if is_network_source(source):
        gen_images.report_device(device)
    os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
    batches = tqdm.tqdm(batches, total=-(-num_images // BATCH_SIZE), unit='batch', disable=None)
    spectrum = average_spectrum(batches, image_size, mean, std, beta, interp, device)
    gen_images.save_npz_atomic(dest, spectrum=spectrum, image_size=np.int64(image_size))
    print(f'Saved {dest}')


@main.command()
@click.argument('npz_file', nargs=1)
@click.option('--save', help='Save the plot to a file (PNG, PDF, SVG, ... by its extension) instead of showing it', metavar='FILE')
@click.option('--dpi', help='Figure resolution', metavar='FLOAT', type=dnnlib.cli.FiniteFloat(min=1), default=100, show_default=True)
@click.option('--smooth', help='Gaussian blur, in frequency bins of the image', metavar='FLOAT', type=dnnlib.cli.FiniteFloat(min=0), default=1.25, show_default=True)
def heatmap(npz_file, save, dpi, smooth):
    """Plot a spectrum as dB contours, centred on zero frequency."""
    npz_file, save = expand_path(npz_file), expand_path(save)
    check_save(save)
    spectrum, image_size = load_spectrum(npz_file)
    plt = get_pyplot(save)
    plot_heatmap(plt, spectrum, image_size, smooth=smooth, dpi=dpi)
    finish_plot(plt, save)


@main.command()
@click.argument('npz_files', nargs=-1, required=True)
@click.option('--save', help='Save the plot to a file (PNG, PDF, SVG, ... by its extension) instead of showing it', metavar='FILE')
@click.option('--dpi', help='Figure resolution', metavar='FLOAT', type=dnnlib.cli.FiniteFloat(min=1), default=100, show_default=True)
@click.option('--smooth', help='Gaussian blur, in frequency bins of the image', metavar='FLOAT', type=dnnlib.cli.FiniteFloat(min=0), default=0, show_default=True)
def slices(npz_files, save, dpi, smooth):
    """Plot the 0 and 45 degree cuts through one or more spectra (of any image sizes)."""
    npz_files, save = [expand_path(f) for f in npz_files], expand_path(save)
    check_save(save)
    spectra = [(os.path.splitext(os.path.basename(f))[0], *load_spectrum(f)) for f in npz_files]
    plt = get_pyplot(save)
    plot_slices(plt, spectra, smooth=smooth, dpi=dpi)
    finish_plot(plt, save)


if __name__ == '__main__':
    main()
