"""The CREPS generator written out op by op in the formulation of its paper and public release, with
plain PyTorch (einsum, per-sample weights, channels-last per-pixel stage, a batch of identical Fourier
features): the oracle of tests/training/test_networks_creps.py and the reference that
benchmarks/networks_creps.py times training/networks_creps.py against.

It reads the parameters of a training.networks_creps.Generator but none of its forward code, and
builds its own coordinate grid of `num_points` samples, so it also checks rendering_scale.
Only the default activation (leaky ReLU, slope 0.2, gain sqrt(2)) is supported.
"""

import numpy as np
import torch


def _lrelu(x):
    return torch.nn.functional.leaky_relu(x, 0.2) * np.sqrt(2)


def _clamp(x, clamp):
    return x if clamp is None else x.clamp(-clamp, clamp)


def _dense(layer, x, activation, lr_multiplier=1):
    """Equalised-lr fully connected layer on the last axis of x."""
    in_features = layer.weight.shape[1]
    y = torch.einsum('...i,oi->...o', x, layer.weight * (lr_multiplier / np.sqrt(in_features)))
    y = y + layer.bias * lr_multiplier
    return _lrelu(y) if activation == 'lrelu' else y


def _modulated(x, weight, styles, demodulate):
    """x: [N, I, A, B] (channels first), weight [O, I], styles [N, I] -> [N, O, A, B]."""
    w = weight.unsqueeze(0) * styles.unsqueeze(1)
    if demodulate:
        w = w * (w.square().sum(dim=2, keepdim=True) + 1e-8).rsqrt()
    return torch.einsum('niab,noi->noab', x, w)


def _layer(layer, x, w, clamp):
    x = _modulated(x, layer.weight, _dense(layer.affine, w, 'linear'), demodulate=True)
    return _clamp(_lrelu(x + layer.bias.reshape(1, -1, 1, 1)), clamp)


def _tores(layer, x, w, clamp):
    styles = _dense(layer.affine, w, 'linear') / np.sqrt(layer.weight.shape[1])
    x = _modulated(x, layer.weight, styles, demodulate=False)
    return _clamp(x + layer.bias.reshape(1, -1, 1, 1), clamp)


def _fourier_input(layer, w, num_points):
    """[N, C, L, 2 * rank]: channel c < C/2 holds sin(2 pi t f[c, k]) in row slot k and column slot rank + k;
    channel C/2 + c the cosine; scaled per sample by weight * affine(w) / sqrt(C)."""
    batch_size = w.shape[0]
    channels, rank = layer.weight.shape[1], layer.weight.shape[3] // 2
    t = torch.linspace(0, 1, num_points)
    freqs = layer.freqs.reshape(channels // 2, rank)
    phase = 2 * np.pi * torch.einsum('l,ck->clk', t, freqs).repeat(1, 1, 2)  # [C/2, L, 2 * rank]
    x = torch.cat([torch.sin(phase), torch.cos(phase)], dim=0).unsqueeze(0).repeat(batch_size, 1, 1, 1)
    amplitude = layer.weight * _dense(layer.affine, w, 'linear').reshape(batch_size, channels, 1, 2 * rank)
    return x * amplitude / np.sqrt(channels)


def _decoder(decoder, x):
    for layer in decoder:
        x = _dense(layer, x, 'lrelu')
    return x


def mapping(G, z, c, truncation_psi=1, truncation_cutoff=None):
    """ws [N, num_ws, w_dim] of the StyleGAN2 mapping network."""
    mapping_net = G.mapping
    lr_multiplier = G.init_kwargs.get('mapping_kwargs', {}).get('lr_multiplier', 0.01)
    x = z * (z.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()
    if G.c_dim > 0:
        y = _dense(mapping_net.embed, c, 'linear')
        x = torch.cat([x, y * (y.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()], dim=1)
    for idx in range(mapping_net.num_layers):
        x = _dense(getattr(mapping_net, f'fc{idx}'), x, 'lrelu', lr_multiplier=lr_multiplier)
    ws = x.unsqueeze(1).repeat(1, G.num_ws, 1)
    if truncation_psi != 1:
        cutoff = G.num_ws if truncation_cutoff is None else truncation_cutoff
        ws[:, :cutoff] = mapping_net.w_avg + truncation_psi * (ws[:, :cutoff] - mapping_net.w_avg)
    return ws


def synthesis(G, ws, num_points=None):
    """Image [N, img_channels, L, L] of ws, with L = num_points coordinates per axis (default img_resolution)."""
    net = G.synthesis
    num_points = net.img_resolution if num_points is None else num_points
    fc_clamp = G.init_kwargs.get('fc_clamp', 256)
    skip = G.init_kwargs.get('architecture', 'skip') == 'skip'
    resolutions = [2 ** i for i in range(2, int(np.log2(net.img_resolution)) + 1)]

    x = lines = feature = None
    for k, res in enumerate(resolutions):
        block = getattr(net, f'b{res}')
        first = 0 if k == 0 else 2 * k - 1  # Index of the block's first w: each block adds two layers.
        if k == 0:
            x = _fourier_input(block.input, ws[:, 0], num_points)
        else:
            x = _layer(block.fc0, x, ws[:, first], fc_clamp)
        x = _layer(block.fc1, x, ws[:, first + 1], fc_clamp)
        if res == net.img_resolution or (skip and k > 0):  # The first block's ToRes runs only if it is the last.
            y = _tores(block.tores, x, ws[:, first + 2], fc_clamp)
            lines = y if lines is None else lines + y
        if lines is not None:
            rank = lines.shape[3] // 2
            rows, cols = lines[..., :rank] * np.sqrt(0.5), lines[..., rank:] * np.sqrt(0.5)
            new_feature = torch.einsum('nchk,ncwk->nhwc', rows, cols)  # Channels last, per pixel.
            feature = new_feature if feature is None else _decoder(getattr(net, f'decoder_{res}'), feature) + new_feature

    feature = _decoder(net.decoder_last, feature)
    img = _dense(net.decoder_img, feature, 'linear').permute(0, 3, 1, 2)
    feature = feature.permute(0, 3, 1, 2)
    w = ws[:, -1]
    for block in [net.block0, net.block1]:
        feature = _layer(block.fc0, feature, w, 256)
        feature = _layer(block.fc1, feature, w, 256)
        img = img + _tores(block.tores, feature, w, 256)
    return img
