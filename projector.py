"""Project a target image into the latent space W (or W+) of a pretrained generator, e.g.

    python projector.py --outdir=out --target=~/mytargetimg.png --network=ffhq.pkl
    python gen_images.py --outdir=out --projected-w=out/projected_w.npz --network=ffhq.pkl

The method follows the StyleGAN2 paper (Karras et al. 2020, Section 5 and Appendix D): starting
from the average latent, Adam minimises the LPIPS distance (VGG16 features) between the target
and the synthesised image, with Gaussian noise added to w early on, and, for StyleGAN2, the
per-layer noise maps optimised too and kept from absorbing the image by a multi-scale
autocorrelation penalty.

With --target-dataset, every frame of a dataset (e.g. a video's frames, for a later network that learns
pose -> latent) is projected to DIR/latents.npz, frame-aligned with the dataset:

    python projector.py --outdir=out --target-dataset=~/datasets/signer-256x256.zip --network=snapshot.pkl

Consecutive frames are optimised in batches (--batch), each frame with its own w; the first batch starts
from the average latent, each later one from the final w of the frame before it, with fewer steps
(--warm-steps), since neighbouring frames are close. The noise maps stay the network's own there, so a
stored w renders its frame as scored. Progress is saved after every batch, and rerunning the same command
continues an interrupted run.
"""

import collections
import contextlib
import copy
import hashlib
import os
import sys
import zipfile

import click
import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F
import tqdm

import dnnlib
import dnnlib.cli
import gen_images
import legacy
import gen_video
from metrics import metric_utils
from torch_utils import misc
from training.dataset import DatasetError, ImageFolderDataset

# ----------------------------------------------------------------------------


def load_target(path, resolution, channels):
    """The target image centre-cropped to a square and resized to the generator's size: uint8 [C, H, W]."""
    try:
        image = PIL.Image.open(path)
        image = image.convert('L' if channels == 1 else 'RGB')
    except (OSError, PIL.UnidentifiedImageError) as e:
        raise click.ClickException(f'--target: cannot read {path}: {e}')
    w, h = image.size
    s = min(w, h)
    image = image.crop(((w - s) // 2, (h - s) // 2, (w + s) // 2, (h + s) // 2))
    image = image.resize((resolution, resolution), PIL.Image.LANCZOS)
    array = np.array(image, dtype=np.uint8)
    if array.ndim == 2:
        array = array[:, :, np.newaxis]
    return array.transpose(2, 0, 1)


def w_statistics(G, label, num_samples, device, seed=123):
    """Mean [1, 1, w_dim] and scalar spread of w over `num_samples` random latents (a fixed set)."""
    z = torch.from_numpy(np.random.RandomState(seed).randn(num_samples, G.z_dim).astype(np.float32)).to(device)
    w = torch.cat([G.mapping(part, label.expand(part.shape[0], -1))[:, :1, :] for part in z.split(1000)])
    w = w.to(torch.float64)
    w_avg = w.mean(dim=0, keepdim=True)
    w_std = ((w - w_avg).square().sum() / num_samples).sqrt()
    return w_avg.to(torch.float32), float(w_std)


def learning_rate(t, initial, rampdown_length, rampup_length):
    """Learning rate at progress t in [0, 1): a short linear warm-up and a cosine ramp-down at the end."""
    ramp = min(1.0, (1.0 - t) / rampdown_length)
    ramp = 0.5 - 0.5 * np.cos(ramp * np.pi)
    ramp = ramp * min(1.0, t / rampup_length)
    return initial * ramp


def noise_regularization(noise_maps):
    """Sum over maps and scales of the squared autocorrelation between neighbouring pixels (one step along x and y).

    Each map is repeatedly average-pooled by 2 down to 8x8, so that correlations over long
    distances are penalised too; independent unit Gaussian noise scores about zero.
    """
    loss = 0.0
    for noise in noise_maps:
        x = noise[None, None, :, :]
        while True:
            loss = loss + (x * torch.roll(x, shifts=1, dims=3)).mean() ** 2
            loss = loss + (x * torch.roll(x, shifts=1, dims=2)).mean() ** 2
            if x.shape[2] <= 8:
                break
            x = F.avg_pool2d(x, kernel_size=2)
    return loss


def to_vgg_input(img_0_255):
    """NCHW float in [0, 255] -> 3 channels, at most 256x256 (VGG16 was trained on 224x224 images)."""
    if img_0_255.shape[1] == 1:
        img_0_255 = img_0_255.repeat([1, 3, 1, 1])
    if img_0_255.shape[2] > 256:
        img_0_255 = F.interpolate(img_0_255, size=(256, 256), mode='area')
    return img_0_255


def synthesise(G, ws, force_fp32):
    """Images of `ws` with the generator's current noise maps: float NCHW in [0, 255], the range LPIPS expects."""
    return (G.synthesis(ws, noise_mode='const', force_fp32=force_fp32) + 1) * (255 / 2)


def lpips_features(vgg16, images_0_255):
    return vgg16(to_vgg_input(images_0_255), resize_images=False, return_lpips=True)


def feature_distances(target_features, synth_features):
    """Squared LPIPS feature distance of each image to its own target: [N]."""
    return (target_features - synth_features).square().flatten(1).sum(dim=1)


def optimise_ws(
    G,                                  # Generator in eval mode, its weights frozen.
    vgg16,                              # LPIPS feature network.
    target_features,                    # lpips_features() of the targets, [N, ...].
    w_start,                            # Starting latents [N, 1, w_dim] (W) or [N, num_ws, w_dim] (W+).
    w_std,                              # Spread of w: the scale of the exploration noise.
    *,
    num_steps,                          # Optimisation steps.
    w_plus,                             # Optimise one w per layer (W+) instead of a single shared w?
    noise_maps              = (),       # Noise buffers of G to optimise along with w (StyleGAN2); () keeps G's own.
    generator               = None,     # torch.Generator of the exploration noise; None = the global one.
    initial_learning_rate   = 0.1,
    initial_noise_factor    = 0.05,
    noise_ramp_length       = 0.75,
    lr_rampdown_length      = 0.25,
    lr_rampup_length        = 0.05,
    regularize_noise_weight = 1e5,
    force_fp32              = False,
):
    """The optimisation shared by one image and a batch of frames (each target has its own w; the losses are
    summed, so the targets do not interact except through shared noise maps). Yields, after each step,
    EasyDict(step, ws [N, num_ws, w_dim] (detached), dists [N] (of the step's noisy w, before the update), loss)."""
    w_opt = w_start.detach().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([w_opt] + list(noise_maps), betas=(0.9, 0.999), lr=initial_learning_rate)

    for step in range(num_steps):
        t = step / num_steps
        w_noise_scale = w_std * initial_noise_factor * max(0.0, 1.0 - t / noise_ramp_length) ** 2
        for group in optimizer.param_groups:
            group['lr'] = learning_rate(t, initial_learning_rate, lr_rampdown_length, lr_rampup_length)

        # The noise on w explores the neighbourhood early on, which helps escape poor local optima.
        w_noise = torch.randn(w_opt.shape, generator=generator, device=w_opt.device, dtype=w_opt.dtype)
        ws = w_opt + w_noise * w_noise_scale
        ws = ws if w_plus else ws.repeat([1, G.num_ws, 1])
        dists = feature_distances(target_features, lpips_features(vgg16, synthesise(G, ws, force_fp32)))
        loss = dists.sum() + noise_regularization(noise_maps) * regularize_noise_weight

        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

        # Keep the noise maps at zero mean and unit variance, like the noise they stand for.
        with torch.no_grad():
            for buf in noise_maps:
                buf -= buf.mean()
                buf *= buf.square().mean().rsqrt()

        ws_out = w_opt.detach() if w_plus else w_opt.detach().repeat([1, G.num_ws, 1])
        yield dnnlib.EasyDict(step=step, ws=ws_out.clone(), dists=dists.detach(), loss=float(loss.detach()))


def project(
    G,                                  # Generator; not modified (the noise maps are optimised in a copy).
    target,                             # Target image: uint8 [C, H, W] with the generator's shape.
    vgg16,                              # LPIPS feature network: vgg16(img_0_255, resize_images=False, return_lpips=True).
    label,                              # Conditioning label [1, c_dim].
    *,
    num_steps               = 1000,     # Optimisation steps.
    w_plus                  = False,    # Optimise one w per layer (W+) instead of a single shared w?
    w_avg_samples           = 10000,    # Random latents that estimate the mean and spread of w.
    initial_learning_rate   = 0.1,      # Peak Adam learning rate.
    initial_noise_factor    = 0.05,     # Noise added to w at the start, relative to the spread of w.
    noise_ramp_length       = 0.75,     # Fraction of the steps over which that noise fades out (quadratically).
    lr_rampdown_length      = 0.25,     # Fraction of the steps over which the learning rate ramps down.
    lr_rampup_length        = 0.05,     # Fraction of the steps over which the learning rate ramps up.
    regularize_noise_weight = 1e5,      # Weight of the noise-map autocorrelation penalty.
    force_fp32              = False,    # Synthesise in float32 even in layers configured for float16?
    device                  = torch.device('cpu'),
):
    """Yields, after each step, EasyDict(step, ws [1, num_ws, w_dim] (detached), dist, loss)."""
    misc.assert_shape(torch.as_tensor(target), [G.img_channels, G.img_resolution, G.img_resolution])
    G = copy.deepcopy(G).eval().requires_grad_(False).to(device)
    w_avg, w_std = w_statistics(G, label, w_avg_samples, device)

    # Noise maps of StyleGAN2 layers ('noise_const' buffers); StyleGAN3 has none.
    noise_maps = [buf for name, buf in G.synthesis.named_buffers() if name.endswith('noise_const')]
    for buf in noise_maps:
        buf[:] = torch.randn_like(buf)
        buf.requires_grad = True

    target_images = torch.as_tensor(target).unsqueeze(0).to(device).to(torch.float32)
    target_features = lpips_features(vgg16, target_images)

    w_start = w_avg.repeat([1, G.num_ws, 1]) if w_plus else w_avg
    steps = optimise_ws(G, vgg16, target_features, w_start, w_std, num_steps=num_steps, w_plus=w_plus,
                        noise_maps=noise_maps, initial_learning_rate=initial_learning_rate,
                        initial_noise_factor=initial_noise_factor, noise_ramp_length=noise_ramp_length,
                        lr_rampdown_length=lr_rampdown_length, lr_rampup_length=lr_rampup_length,
                        regularize_noise_weight=regularize_noise_weight, force_fp32=force_fp32)
    for state in steps:
        yield dnnlib.EasyDict(step=state.step, ws=state.ws, dist=float(state.dists.sum()), loss=state.loss)

# ----------------------------------------------------------------------------


def render(G, ws, force_fp32):
    """uint8 HWC image of the generator as loaded (its own noise maps), as gen_images.py --projected-w renders it."""
    with torch.no_grad():
        img = G.synthesis(ws, noise_mode='const', force_fp32=force_fp32)
    return gen_images.images_to_uint8(img)[0].cpu().numpy()


def load_vgg16(vgg16_path, device):
    if vgg16_path is not None:
        metric_utils.set_detector_override(metric_utils.VGG16_URL, vgg16_path)
    try:
        return metric_utils.get_feature_detector(metric_utils.VGG16_URL, device=device, verbose=True)
    except metric_utils.MetricError as e:
        raise click.ClickException(f'{e}; or pass --vgg16=PATH to a local copy of vgg16.pkl')


# ----------------------------------------------------------------------------
# Every frame of a dataset (--target-dataset).

LATENTS_NAME = 'latents.npz'
PARTIAL_NAME = 'latents-partial.npz'

# The settings a latents file records, with their options: a resumed run must use the same ones, since each
# changes the results (--batch too: it fixes the batches, their seeds and their starting points).
SETTING_OPTIONS = dict(w_plus='--w-plus', num_steps='--num-steps', warm_steps='--warm-steps', batch='--batch',
                       seed='--seed', class_idx='--class')


generator_fingerprint = gen_images.generator_fingerprint  # The name latents files have always been checked with.


def dataset_fingerprint(path, fnames):
    """SHA-256 (hex) of a dataset's content: the bytes of a zip archive, or the names and bytes of a folder's images."""
    digest = hashlib.sha256()
    files = [(fname, os.path.join(path, fname)) for fname in fnames] if os.path.isdir(path) else [(None, path)]
    for fname, file_path in files:
        if fname is not None:
            digest.update(f'{len(fname)}:{fname}'.encode())
        with open(file_path, 'rb') as f:
            for chunk in iter(lambda: f.read(1 << 20), b''):
                digest.update(chunk)
    return digest.hexdigest()


def open_target_dataset(path, G):
    """The dataset of --target-dataset, refused (one line) when unreadable or unlike the network's images."""
    if not os.path.exists(path):
        raise click.ClickException(f'--target-dataset: no such dataset: {path}')
    try:
        dataset = ImageFolderDataset(path=path)
        dataset.check_image_sizes()  # Header reads only: a frame of another size must not stop the run hours in.
    except DatasetError as e:
        raise click.ClickException(f'--target-dataset: {e}')
    if (dataset.resolution, dataset.num_channels) != (G.img_resolution, G.img_channels):
        raise click.ClickException(
            f'--target-dataset: {path} holds {dataset.resolution}x{dataset.resolution} images with '
            f'{dataset.num_channels} channel(s), but the network makes {G.img_resolution}x{G.img_resolution} images '
            f'with {G.img_channels}; convert it with dataset_tool.py --resolution={G.img_resolution}x{G.img_resolution}')
    return dataset


def run_identity(network_pkl, G, dataset_path, dataset, *, w_plus, num_steps, warm_steps, batch, seed, class_idx):
    """What a latents file records of its making: the network and dataset (names, and fingerprints that are
    compared) and the settings."""
    return dict(network=str(network_pkl), network_sha256=generator_fingerprint(G), dataset=str(dataset_path),
                dataset_sha256=dataset_fingerprint(dataset_path, dataset.image_fnames), w_plus=bool(w_plus),
                num_steps=int(num_steps), warm_steps=int(warm_steps), batch=int(batch), seed=int(seed),
                class_idx=-1 if class_idx is None else int(class_idx))


def _scalar(array):
    return array.item() if isinstance(array, np.ndarray) and array.ndim == 0 else array


def read_latents_file(path):
    """The arrays of a latents file (final or partial) as a dict; scalars as Python values."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if not hasattr(data, 'files'):
                raise ValueError('an .npy array, not an .npz archive')
            return {key: _scalar(data[key]) for key in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise click.ClickException(f'cannot read {path} ({reason}); remove it to start over') from None


def check_same_run(path, saved, identity):
    """Refuses (one line) a latents file made for another network or dataset, or with other settings."""
    missing = [key for key in ('w', 'loss', 'fnames', *identity) if key not in saved]
    if missing:
        raise click.ClickException(f'{path} is not a latents file of projector.py --target-dataset (it has no '
                                   f'{missing[0]!r}); remove it or choose another --outdir')
    if saved['network_sha256'] != identity['network_sha256']:
        raise click.ClickException(f'{path} was made for another network ({saved["network"]}: other weights than '
                                   f'{identity["network"]}); remove it to start over, or choose another --outdir')
    if saved['dataset_sha256'] != identity['dataset_sha256']:
        raise click.ClickException(f'{path} was made for another dataset ({saved["dataset"]}: other content than '
                                   f'{identity["dataset"]}); remove it to start over, or choose another --outdir')
    for key, option in SETTING_OPTIONS.items():
        if saved[key] != identity[key]:
            def shown(value):
                return 'none' if key == 'class_idx' and value < 0 else value
            raise click.ClickException(f'{path} was made with {option}={shown(saved[key])}, not {shown(identity[key])}: '
                                       f'rerun with the same options, or remove it to start over')


def load_progress(path, identity, fnames, w_shape):
    """(w [done, *w_shape], loss [done]) of an interrupted run's partial file, checked against this run; empty
    arrays when there is no partial file."""
    if not os.path.isfile(path):
        return np.zeros([0, *w_shape], dtype=np.float32), np.zeros([0], dtype=np.float32)
    saved = read_latents_file(path)
    check_same_run(path, saved, identity)
    w, loss, done_fnames = saved['w'], saved['loss'], list(saved['fnames'])
    if (w.shape[1:] != tuple(w_shape) or len(w) != len(loss) or done_fnames != fnames[:len(w)]
            or (len(w) % identity['batch'] != 0 and len(w) != len(fnames))):
        raise click.ClickException(f'{path} does not fit this run (its arrays disagree); remove it to start over')
    return w.astype(np.float32), loss.astype(np.float32)


def batch_start(w_avg, previous_w, *, w_plus, num_ws, num_steps, warm_steps):
    """Where a batch starts, EasyDict(w [1, 1 or num_ws, w_dim], num_steps, warm). The first batch
    (previous_w None) starts from w_avg [1, 1, w_dim] with num_steps; a later one from the final w of the frame
    just before it (previous_w [1 or num_ws, w_dim]) with warm_steps: consecutive video frames are close."""
    if previous_w is None:
        w = w_avg.reshape(1, 1, -1)
        return dnnlib.EasyDict(w=w.repeat([1, num_ws, 1]) if w_plus else w, num_steps=num_steps, warm=False)
    w = torch.as_tensor(np.asarray(previous_w), dtype=torch.float32, device=w_avg.device).unsqueeze(0)
    return dnnlib.EasyDict(w=w, num_steps=warm_steps, warm=True)


def batch_seed(seed, batch_index):
    """The seed of a batch's exploration noise, fixed by --seed and the batch's place: a resumed run draws the
    same noise as an uninterrupted one."""
    return int(np.random.SeedSequence([seed, batch_index]).generate_state(1)[0])


def project_batch(G, vgg16, targets, start, w_std, *, w_plus, seed, force_fp32, device):
    """Projects frames (uint8 [N, C, H, W]), each with its own w, all from `start` (batch_start()), keeping G's own
    noise maps. Returns float32 arrays: ws [N, 1 or num_ws, w_dim] and the distance [N] of those final ws."""
    images = torch.as_tensor(targets).to(device).to(torch.float32)
    with torch.no_grad():
        target_features = lpips_features(vgg16, images)
    generator = torch.Generator(device=device).manual_seed(seed)
    w_start = start.w.repeat([len(targets), 1, 1])
    steps = optimise_ws(G, vgg16, target_features, w_start, w_std, num_steps=start.num_steps, w_plus=w_plus,
                        generator=generator, force_fp32=force_fp32)
    state = collections.deque(steps, maxlen=1)[0]  # Runs every step; only the last state matters here.
    # The steps report the distance of a noisy w before its update; the file records that of the w it stores.
    with torch.no_grad():
        dists = feature_distances(target_features, lpips_features(vgg16, synthesise(G, state.ws, force_fp32)))
    ws = state.ws if w_plus else state.ws[:, :1]
    return ws.cpu().numpy().astype(np.float32), dists.cpu().numpy().astype(np.float32)


def write_latents(path, w, loss, fnames, identity):
    """A latents file, written atomically (a kill leaves the previous file or the new one)."""
    arrays = dict(w=np.ascontiguousarray(w, dtype=np.float32), loss=np.asarray(loss, dtype=np.float32),
                  fnames=np.array(list(fnames), dtype=str), **{key: np.array(value) for key, value in identity.items()})
    dnnlib.util.write_atomically(path, lambda f: np.savez(f, **arrays), fsync=True)


def read_frames(dataset, first, stop):
    """uint8 [stop - first, C, H, W]: items first..stop-1 of the dataset; a damaged image is one line."""
    try:
        return np.stack([dataset[idx][0] for idx in range(first, stop)])
    except DatasetError as e:
        raise click.ClickException(f'--target-dataset: {e}')


def stored_w_shape(G, w_plus):
    """Shape of a frame's w in the partial file: as optimised (W is repeated to num_ws only in latents.npz)."""
    return [G.num_ws if w_plus else 1, G.w_dim]


def project_dataset(G, vgg16, dataset, label, outdir, identity, done, *, w_avg_samples=10000, force_fp32=False,
                    device=torch.device('cpu')):
    """Projects, a batch at a time, the frames of `dataset` after the `done` ones (load_progress() of the partial
    file in `outdir`), rewriting that file after each batch; at the end writes latents.npz and removes the
    partial file. Yields after each saved batch EasyDict(first, stop, num_steps, warm, mean_dist)."""
    fnames = dataset.image_fnames  # Item order: the dataset has neither max_size nor xflip.
    w_plus, batch = identity['w_plus'], identity['batch']
    partial_path = os.path.join(outdir, PARTIAL_NAME)
    done_w, done_loss = done
    w_avg, w_std = w_statistics(G, label, w_avg_samples, device)

    ws_parts, loss_parts = [done_w], [done_loss]
    previous_w = done_w[-1] if len(done_w) > 0 else None
    for first in range(len(done_w), len(fnames), batch):
        stop = min(first + batch, len(fnames))
        start = batch_start(w_avg, previous_w, w_plus=w_plus, num_ws=G.num_ws, num_steps=identity['num_steps'],
                            warm_steps=identity['warm_steps'])
        ws, dists = project_batch(G, vgg16, read_frames(dataset, first, stop), start, w_std, w_plus=w_plus,
                                  seed=batch_seed(identity['seed'], first // batch), force_fp32=force_fp32, device=device)
        ws_parts.append(ws)
        loss_parts.append(dists)
        previous_w = ws[-1]
        write_latents(partial_path, np.concatenate(ws_parts), np.concatenate(loss_parts), fnames[:stop], identity)
        yield dnnlib.EasyDict(first=first, stop=stop, num_steps=start.num_steps, warm=start.warm,
                              mean_dist=float(dists.mean()))

    w = np.concatenate(ws_parts)
    w = np.broadcast_to(w, [len(w), G.num_ws, G.w_dim])
    write_latents(os.path.join(outdir, LATENTS_NAME), w, np.concatenate(loss_parts), fnames, identity)
    if os.path.exists(partial_path):
        os.remove(partial_path)


def run_dataset_projection(network_pkl, dataset_path, outdir, *, num_steps, warm_steps, batch, seed, w_plus,
                           class_idx, vgg16_path):
    """--target-dataset: projects every frame to DIR/latents.npz, resuming an interrupted run."""
    dnnlib.cli.check_output_dir(outdir, '--outdir')
    device = gen_images.choose_device(verbose=False)
    G = gen_images.load_generator(network_pkl, device)
    label = gen_images.make_label(G, class_idx, device)
    dataset = open_target_dataset(dataset_path, G)
    vgg16 = load_vgg16(vgg16_path, device)
    gen_images.report_device(device)

    warm_steps = default_warm_steps(num_steps) if warm_steps is None else warm_steps
    identity = run_identity(network_pkl, G, dataset_path, dataset, w_plus=w_plus, num_steps=num_steps,
                            warm_steps=warm_steps, batch=batch, seed=seed, class_idx=class_idx)
    final_path, partial_path = os.path.join(outdir, LATENTS_NAME), os.path.join(outdir, PARTIAL_NAME)
    if os.path.isfile(final_path):
        check_same_run(final_path, read_latents_file(final_path), identity)
        if os.path.exists(partial_path):  # Left by a kill between writing latents.npz and removing it.
            os.remove(partial_path)
        print(f'{final_path} is complete already: nothing to do')
        return
    os.makedirs(outdir, exist_ok=True)
    for path in (final_path, partial_path):
        dnnlib.util.remove_stale_temporaries(path)

    num_frames = len(dataset)
    done = load_progress(partial_path, identity, dataset.image_fnames, stored_w_shape(G, w_plus))
    if len(done[0]) > 0:
        print(f'Resuming from {partial_path}: {len(done[0])} of {num_frames} frames done')
    runs = project_dataset(G, vgg16, dataset, label, outdir, identity, done, force_fp32=(device.type != 'cuda'),
                           device=device)
    with tqdm.tqdm(total=num_frames, initial=len(done[0]), unit='frame', disable=None) as progress:
        for result in runs:
            progress.update(result.stop - result.first)
            source = f'warm start from frame {result.first - 1}' if result.warm else 'start from w_avg'
            progress.write(f'Frames {result.first}-{result.stop - 1} of {num_frames}: mean distance '
                           f'{result.mean_dist:.4g} after {result.num_steps} steps ({source})')
    print(f'Saved {num_frames} latents to {final_path}')


def default_warm_steps(num_steps):
    """Steps of a warm-started batch when --warm-steps is not given: a fifth of --num-steps (200 of 1000)."""
    return max(1, num_steps // 5)


def check_modes(target_fname, target_dataset, explicit):
    """Refuses (one line) a command that names no target or two, or sets an option of the other mode;
    `explicit`: the names of the options given on the command line."""
    if (target_fname is None) == (target_dataset is None):
        raise click.ClickException('give exactly one of --target=FILE (one image) and --target-dataset=ZIP|DIR '
                                   '(every image of a dataset)')
    if target_dataset is not None and 'save_video' in explicit:
        raise click.ClickException('--save-video applies to --target only: --target-dataset writes no video')
    for name, option in (('batch', '--batch'), ('warm_steps', '--warm-steps')):
        if target_fname is not None and name in explicit:
            raise click.ClickException(f'{option} applies to --target-dataset only, not to --target')

# ----------------------------------------------------------------------------


@click.command()
@click.option('network_pkl', '--network', help='Network pickle to invert (path or URL)', metavar='PATH|URL', required=True)
@legacy.trust_pickle_option
@click.option('--target', 'target_fname', help='Image to reconstruct (centre-cropped and resized to the network)', metavar='FILE')
@click.option('--target-dataset', help='Project every image of this dataset (zip or folder of dataset_tool.py) to DIR/latents.npz',
              metavar='ZIP|DIR')
@click.option('--num-steps', help='Optimisation steps (with --target-dataset: of the first batch)', type=click.IntRange(min=1),
              default=1000, show_default=True)
@click.option('--warm-steps', help='With --target-dataset: steps of each later batch, which starts from the previous '
              'frame  [default: a fifth of --num-steps]', type=click.IntRange(min=1))
@click.option('--batch', help='With --target-dataset: consecutive frames optimised together', type=click.IntRange(min=1),
              default=8, show_default=True)
@click.option('--seed', help='Seed for the noise of the optimisation', type=click.IntRange(0, gen_images.MAX_SEED), default=303, show_default=True)
@click.option('--save-video', help='Also write proj.mp4 showing every step (--target only)', type=bool, default=True,
              show_default=True, metavar='BOOL')
@click.option('--w-plus', help='Optimise one w per layer (W+) instead of a single w', type=bool, default=False, show_default=True, metavar='BOOL')
@click.option('--class', 'class_idx', type=click.IntRange(min=0), help='Class label for conditional networks')
@click.option('--vgg16', 'vgg16_path', help='VGG16 feature network (vgg16.pkl) to use instead of downloading it; '
              'also settable with the STYLEGAN_VGG16_PKL environment variable', metavar='PATH|URL')
@click.option('--outdir', help='Folder for the results (created if needed)', required=True, metavar='DIR')
@click.pass_context
def run_projection(ctx, network_pkl, target_fname, target_dataset, num_steps, warm_steps, batch, seed, save_video, w_plus,
                   class_idx, vgg16_path, outdir):
    """Find the latent w whose image best matches a target image, or those of every frame of a dataset.

    \b
    Examples:
    python projector.py --outdir=out --target=~/mytargetimg.png \\
        --network=https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan3/versions/1/files/stylegan3-t-ffhq-1024x1024.pkl
    python projector.py --outdir=out --target-dataset=~/datasets/signer-256x256.zip --network=snapshot.pkl

    With --target: writes target.png (the cropped and resized target), proj.png (the projection),
    projected_w.npz (its latents, for gen_images.py --projected-w) and, with --save-video,
    proj.mp4 (target and projection side by side at every step).

    With --target-dataset: projects every image, in the dataset's order, in batches of --batch
    consecutive frames (each frame its own w). The first batch starts from w_avg and takes
    --num-steps; each later one starts from the final w of the frame before it and takes
    --warm-steps. Writes latents.npz: w [N, num_ws, w_dim] (float32; W repeated per layer, or W+),
    fnames [N] (the images' names in the dataset, frame-aligned with w), loss [N] (final LPIPS
    distances), network_sha256 (projector.generator_fingerprint of the network's weights),
    dataset_sha256, the paths and the settings. Progress is saved to latents-partial.npz after
    every batch; the same command run again continues from there, and refuses a partial file of
    another network, dataset or settings. StyleGAN2 noise maps stay the network's own, so each w
    renders its frame as scored.
    """
    explicit = {name for name in ('save_video', 'batch', 'warm_steps')
                if ctx.get_parameter_source(name) not in (None, click.core.ParameterSource.DEFAULT)}
    check_modes(target_fname, target_dataset, explicit)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if target_dataset is not None:
        run_dataset_projection(network_pkl, os.path.expanduser(target_dataset), outdir, num_steps=num_steps, warm_steps=warm_steps,
                               batch=batch, seed=seed, w_plus=w_plus, class_idx=class_idx, vgg16_path=vgg16_path)
        return

    if not os.path.isfile(target_fname):
        raise click.ClickException(f'--target: no such file: {target_fname}')
    dnnlib.cli.check_output_dir(outdir, '--outdir')
    device = gen_images.choose_device(verbose=False)
    force_fp32 = (device.type != 'cuda')
    G = gen_images.load_generator(network_pkl, device)
    label = gen_images.make_label(G, class_idx, device)
    target = load_target(target_fname, G.img_resolution, G.img_channels)
    vgg16 = load_vgg16(vgg16_path, device)
    gen_images.report_device(device)

    os.makedirs(outdir, exist_ok=True)
    target_hwc = target.transpose(1, 2, 0)
    gen_images.save_image(target_hwc, os.path.join(outdir, 'target.png'))

    steps = project(G, target, vgg16, label, num_steps=num_steps, w_plus=w_plus,
                    force_fp32=force_fp32, device=device)
    progress = tqdm.tqdm(steps, total=num_steps, unit='step', disable=None)
    video_writer = (gen_video.atomic_video_writer(os.path.join(outdir, 'proj.mp4'), fps=10, bitrate='16M')
                    if save_video else contextlib.nullcontext())
    with video_writer as video:
        for state in progress:
            progress.set_postfix(dist=f'{state.dist:.4g}', loss=f'{state.loss:.4g}', refresh=False)
            if video is not None:
                frame = np.concatenate([target_hwc, render(G, state.ws, force_fp32)], axis=1)
                video.append_data(np.repeat(frame, 3, axis=2) if frame.shape[2] == 1 else frame)
    print(f'Final distance {state.dist:.4g} after {num_steps} steps', file=sys.stderr)

    projected_ws = state.ws
    gen_images.save_image(render(G, projected_ws, force_fp32), os.path.join(outdir, 'proj.png'))
    gen_images.save_npz_atomic(os.path.join(outdir, 'projected_w.npz'), w=projected_ws.cpu().numpy())
    print(f'Saved target.png, proj.png, projected_w.npz{" and proj.mp4" if save_video else ""} to {outdir}')


if __name__ == '__main__':
    run_projection()
