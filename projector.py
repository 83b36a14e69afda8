"""Project a target image into the latent space W (or W+) of a pretrained generator, e.g.

    python projector.py --outdir=out --target=~/mytargetimg.png --network=ffhq.pkl
    python gen_images.py --outdir=out --projected-w=out/projected_w.npz --network=ffhq.pkl

The method follows the StyleGAN2 paper (Karras et al. 2020, Section 5 and Appendix D): starting
from the average latent, Adam minimises the LPIPS distance (VGG16 features) between the target
and the synthesised image, with Gaussian noise added to w early on, and, for StyleGAN2, the
per-layer noise maps optimised too and kept from absorbing the image by a multi-scale
autocorrelation penalty.
"""

import contextlib
import copy
import os
import sys

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
    target_features = vgg16(to_vgg_input(target_images), resize_images=False, return_lpips=True)

    w_opt = (w_avg.repeat([1, G.num_ws, 1]) if w_plus else w_avg).clone().requires_grad_(True)
    optimizer = torch.optim.Adam([w_opt] + noise_maps, betas=(0.9, 0.999), lr=initial_learning_rate)

    for step in range(num_steps):
        t = step / num_steps
        w_noise_scale = w_std * initial_noise_factor * max(0.0, 1.0 - t / noise_ramp_length) ** 2
        for group in optimizer.param_groups:
            group['lr'] = learning_rate(t, initial_learning_rate, lr_rampdown_length, lr_rampup_length)

        # The noise on w explores the neighbourhood early on, which helps escape poor local optima.
        ws = w_opt + torch.randn_like(w_opt) * w_noise_scale
        ws = ws if w_plus else ws.repeat([1, G.num_ws, 1])
        synth_images = (G.synthesis(ws, noise_mode='const', force_fp32=force_fp32) + 1) * (255 / 2)
        synth_features = vgg16(to_vgg_input(synth_images), resize_images=False, return_lpips=True)
        dist = (target_features - synth_features).square().sum()
        loss = dist + noise_regularization(noise_maps) * regularize_noise_weight

        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

        # Keep the noise maps at zero mean and unit variance, like the noise they stand for.
        with torch.no_grad():
            for buf in noise_maps:
                buf -= buf.mean()
                buf *= buf.square().mean().rsqrt()

        ws_out = w_opt.detach() if w_plus else w_opt.detach().repeat([1, G.num_ws, 1])
        yield dnnlib.EasyDict(step=step, ws=ws_out.clone(), dist=float(dist.detach()), loss=float(loss.detach()))

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


@click.command()
@click.option('network_pkl', '--network', help='Network pickle to invert (path or URL)', metavar='PATH|URL', required=True)
@legacy.trust_pickle_option
@click.option('--target', 'target_fname', help='Image to reconstruct (centre-cropped and resized to the network)', metavar='FILE', required=True)
@click.option('--num-steps', help='Optimisation steps', type=click.IntRange(min=1), default=1000, show_default=True)
@click.option('--seed', help='Seed for the noise of the optimisation', type=click.IntRange(0, gen_images.MAX_SEED), default=303, show_default=True)
@click.option('--save-video', help='Also write proj.mp4 showing every step', type=bool, default=True, show_default=True, metavar='BOOL')
@click.option('--w-plus', help='Optimise one w per layer (W+) instead of a single w', type=bool, default=False, show_default=True, metavar='BOOL')
@click.option('--class', 'class_idx', type=click.IntRange(min=0), help='Class label for conditional networks')
@click.option('--vgg16', 'vgg16_path', help='VGG16 feature network (vgg16.pkl) to use instead of downloading it; '
              'also settable with the STYLEGAN_VGG16_PKL environment variable', metavar='PATH|URL')
@click.option('--outdir', help='Folder for the results (created if needed)', required=True, metavar='DIR')
def run_projection(network_pkl, target_fname, num_steps, seed, save_video, w_plus, class_idx, vgg16_path, outdir):
    """Find the latent w whose image best matches a target image.

    \b
    Example:
    python projector.py --outdir=out --target=~/mytargetimg.png \\
        --network=https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan3/versions/1/files/stylegan3-t-ffhq-1024x1024.pkl

    Writes target.png (the cropped and resized target), proj.png (the projection),
    projected_w.npz (its latents, for gen_images.py --projected-w) and, with --save-video,
    proj.mp4 (target and projection side by side at every step).
    """
    np.random.seed(seed)
    torch.manual_seed(seed)
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
