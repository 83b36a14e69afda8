"""StyleGAN-T generator and discriminator ("StyleGAN-T: Unlocking the Power of GANs for Fast Large-Scale
Text-to-Image Synthesis", Sauer et al. 2023).

The generator maps a 64-D latent through a small MLP and appends the L2-normalised embedding of a CLIP
text transformer; the same w drives every layer of a synthesis network of residual modulated convolutions
that starts from Fourier features. The discriminator is a set of light heads on the token features of a
frozen self-supervised ViT (DINO), conditioned by projection on the text embedding.

The text transformer and the ViT are written here (their weights are copied in from open_clip and timm by
training/encoders.py), so a snapshot holds everything it needs and loads without either library. Frozen
weights are buffers: no optimiser sees them and no gradient reaches them.

This module is embedded in network pickles and executed standalone when they are loaded, so it imports
nothing but numpy, torch, `torch_utils.misc`, `torch_utils.persistence` and `torch_utils.ops`.
"""

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch_utils import misc
from torch_utils import persistence
from torch_utils.ops import bias_act
from torch_utils.ops import conv2d_resample
from torch_utils.ops import upfirdn2d

# ----------------------------------------------------------------------------
# Shared pieces (the same code as in the other network modules).


def _describe(module, *names):
    """extra_repr text: the named attributes of `module` as name=value."""
    return ', '.join(f'{name}={getattr(module, name)}' for name in names)


@misc.profiled_function
def normalize_2nd_moment(x, dim=1, eps=1e-8):
    """Scales `x` so that its mean square along `dim` is 1."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


@persistence.persistent_class
class FullyConnectedLayer(torch.nn.Module):
    def __init__(self,
        in_features,                # Width of the input.
        out_features,               # Width of the output.
        bias            = True,     # Add a learned bias.
        activation      = 'linear', # Activation after the bias.
        lr_multiplier   = 1,        # Learning rate of this layer relative to the others.
        bias_init       = 0,        # Starting value of the bias.
    ):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.activation = activation
        # Stored divided by lr_multiplier and multiplied back when used: Adam's steps shrink by that factor.
        self.weight = torch.nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = None
        if bias:
            self.bias = torch.nn.Parameter(torch.full([out_features], np.float32(bias_init)))
        self.weight_gain = lr_multiplier / np.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x):
        """[batch_size, in_features] -> [batch_size, out_features]."""
        weight = self.weight.to(x.dtype)
        bias = None if self.bias is None else self.bias.to(x.dtype)
        if bias is not None and self.bias_gain != 1:
            bias = bias * self.bias_gain
        gain = float(self.weight_gain)  # Applied to the product, which has fewer rows than the weight.
        if bias is not None and self.activation == 'linear':
            return torch.addmm(bias.unsqueeze(0), x, weight.t(), alpha=gain)
        return bias_act.bias_act(x.matmul(weight.t()).mul_(gain), bias, act=self.activation)

    def extra_repr(self):
        return _describe(self, 'in_features', 'out_features', 'activation')

# ----------------------------------------------------------------------------
# Transformer encoders with frozen weights: CLIP's text tower and a ViT.


def _activation(name):
    if name == 'quick_gelu':  # OpenAI CLIP's approximation, x * sigmoid(1.702 x).
        return lambda x: x * torch.sigmoid(1.702 * x)
    assert name == 'gelu', name
    return F.gelu


def _add_weight(module, name, value, trainable):
    """A pretrained weight: a parameter when it is to be tuned, else a buffer (frozen, but saved). The state-dict
    name is the same either way, so weights move freely between the two kinds of network."""
    if trainable:
        module.register_parameter(name, torch.nn.Parameter(value))
    else:
        module.register_buffer(name, value)


@persistence.persistent_class
class TransformerBlock(torch.nn.Module):
    """Pre-norm transformer block: x + attention(LN(x)), then x + MLP(LN(x)); weights are frozen buffers unless
    `trainable`."""

    def __init__(self,
        width,                      # Token width.
        heads,                      # Attention heads.
        mlp_width,                  # Hidden width of the MLP.
        activation      = 'gelu',   # MLP activation: 'gelu' or 'quick_gelu'.
        norm_eps        = 1e-5,     # Epsilon of the layer norms.
        trainable       = False,    # Weights as parameters (an optimizer may tune them) instead of frozen buffers.
    ):
        super().__init__()
        assert width % heads == 0, f'width {width} does not split into {heads} heads'
        self.width, self.heads, self.mlp_width = width, heads, mlp_width
        self.activation, self.norm_eps = activation, norm_eps
        # Random start values: tests and stand-ins use them; real weights come from a pretrained model.
        for prefix, (fan_out, fan_in) in [('qkv', (3 * width, width)), ('proj', (width, width)),
                                          ('fc1', (mlp_width, width)), ('fc2', (width, mlp_width))]:
            _add_weight(self, f'{prefix}_weight', torch.randn([fan_out, fan_in]) / np.sqrt(fan_in), trainable)
            _add_weight(self, f'{prefix}_bias', torch.zeros([fan_out]), trainable)
        for prefix in ('norm1', 'norm2'):
            _add_weight(self, f'{prefix}_weight', torch.ones([width]), trainable)
            _add_weight(self, f'{prefix}_bias', torch.zeros([width]), trainable)

    def forward(self, x, causal=False):
        """[batch, tokens, width] -> same; `causal` lets each token attend only to itself and earlier ones."""
        batch, tokens, width = x.shape
        misc.assert_shape(x, [None, None, self.width])
        h = F.layer_norm(x, [width], self.norm1_weight, self.norm1_bias, self.norm_eps)
        q, k, v = F.linear(h, self.qkv_weight, self.qkv_bias).reshape(batch, tokens, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        x = x + F.linear(attended.transpose(1, 2).reshape(batch, tokens, width), self.proj_weight, self.proj_bias)
        h = F.layer_norm(x, [width], self.norm2_weight, self.norm2_bias, self.norm_eps)
        h = _activation(self.activation)(F.linear(h, self.fc1_weight, self.fc1_bias))
        return x + F.linear(h, self.fc2_weight, self.fc2_bias)

    def extra_repr(self):
        return f'width={self.width}, heads={self.heads}, mlp_width={self.mlp_width}, activation={self.activation}'


@persistence.persistent_class
class TextTransformer(torch.nn.Module):
    """CLIP's text tower: token ids -> L2-normalised embedding, read at each sequence's end-of-text token
    (the highest id of CLIP's vocabulary)."""

    def __init__(self,
        vocab_size,                 # Tokens in the vocabulary.
        context_length,             # Tokens per text (padded or cut to this).
        width,                      # Token width.
        layers,                     # Transformer blocks.
        heads,                      # Attention heads per block.
        mlp_width,                  # Hidden width of each block's MLP.
        embed_dim,                  # Width of the output embedding.
        activation      = 'gelu',   # MLP activation: 'gelu' or 'quick_gelu' (OpenAI's weights).
        norm_eps        = 1e-5,     # Epsilon of the layer norms.
        trainable       = False,    # Weights as parameters, tuned in training (--train-mode=text-encoder).
    ):
        super().__init__()
        self.vocab_size, self.context_length, self.embed_dim = vocab_size, context_length, embed_dim
        self.trainable = trainable
        _add_weight(self, 'token_embedding', torch.randn([vocab_size, width]) * 0.02, trainable)
        _add_weight(self, 'positional_embedding', torch.randn([context_length, width]) * 0.01, trainable)
        self.blocks = torch.nn.ModuleList([TransformerBlock(width=width, heads=heads, mlp_width=mlp_width,
                                                            activation=activation, norm_eps=norm_eps, trainable=trainable)
                                           for _ in range(layers)])
        _add_weight(self, 'final_norm_weight', torch.ones([width]), trainable)
        _add_weight(self, 'final_norm_bias', torch.zeros([width]), trainable)
        _add_weight(self, 'projection', torch.randn([width, embed_dim]) / np.sqrt(width), trainable)
        self.norm_eps = norm_eps

    def forward(self, tokens):
        """[batch, context_length] int64 -> [batch, embed_dim] float32 of unit length."""
        misc.assert_shape(tokens, [None, self.context_length])
        x = self.token_embedding[tokens] + self.positional_embedding
        for block in self.blocks:
            x = block(x, causal=True)
        x = F.layer_norm(x, x.shape[-1:], self.final_norm_weight, self.final_norm_bias, self.norm_eps)
        pooled = x[torch.arange(x.shape[0], device=x.device), tokens.argmax(dim=-1)]
        return F.normalize(pooled @ self.projection, dim=-1)


@persistence.persistent_class
class VisionTransformer(torch.nn.Module):
    """A ViT with a class token (DINO's), returning the token maps after the patch embedding and after
    chosen blocks."""

    def __init__(self,
        img_size,                   # Side of the images it was trained on.
        patch_size,                 # Side of a patch.
        width,                      # Token width.
        depth,                      # Transformer blocks.
        heads,                      # Attention heads per block.
        mlp_width,                  # Hidden width of each block's MLP.
        hooks,                      # Indices of the blocks whose output is a feature map.
        in_channels     = 3,        # Image channels.
        norm_eps        = 1e-6,     # Epsilon of the layer norms.
        mean            = (0.485, 0.456, 0.406),    # Normalisation of its [0, 1] inputs (ImageNet's for DINO).
        std             = (0.229, 0.224, 0.225),
    ):
        super().__init__()
        assert all(0 <= hook < depth for hook in hooks), f'hooks {hooks} outside 0..{depth - 1}'
        self.img_size, self.patch_size, self.width = img_size, patch_size, width
        self.hooks = sorted(hooks)
        self.mean, self.std = tuple(mean), tuple(std)
        grid = img_size // patch_size
        self.register_buffer('patch_weight', torch.randn([width, in_channels, patch_size, patch_size]) * 0.02)
        self.register_buffer('patch_bias', torch.zeros([width]))
        self.register_buffer('cls_token', torch.zeros([1, 1, width]))
        self.register_buffer('pos_embed', torch.randn([1, grid * grid + 1, width]) * 0.02)
        self.blocks = torch.nn.ModuleList([TransformerBlock(width=width, heads=heads, mlp_width=mlp_width,
                                                            activation='gelu', norm_eps=norm_eps)
                                           for _ in range(self.hooks[-1] + 1)])  # Later blocks are never used.

    def train(self, mode=True):
        del mode
        return super().train(False)  # Frozen: always in evaluation mode.

    def position_embeddings(self, grid_h, grid_w):
        """[1, 1 + grid_h * grid_w, width]: the stored patch grid resampled (bicubic) when the grid differs."""
        stored = int(round(math.sqrt(self.pos_embed.shape[1] - 1)))
        if (grid_h, grid_w) == (stored, stored):
            return self.pos_embed
        cls_pos, patch_pos = self.pos_embed[:, :1], self.pos_embed[:, 1:]
        patch_pos = patch_pos.reshape(1, stored, stored, -1).permute(0, 3, 1, 2)
        patch_pos = F.interpolate(patch_pos, size=(grid_h, grid_w), mode='bicubic', align_corners=False)
        return torch.cat([cls_pos, patch_pos.flatten(2).transpose(1, 2)], dim=1)

    def forward(self, img):
        """[batch, channels, H, W] normalised images -> list of [batch, width, patches] maps (patch embedding first,
        then one per hook), each patch token plus the class token."""
        x = F.conv2d(img, self.patch_weight, self.patch_bias, stride=self.patch_size)
        grid_h, grid_w = x.shape[2:]
        x = x.flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1).to(x.dtype), x], dim=1)
        x = x + self.position_embeddings(grid_h, grid_w).to(x.dtype)
        maps = [x]
        for idx, block in enumerate(self.blocks):
            x = block(x)
            if idx in self.hooks:
                maps.append(x)
        return [(tokens[:, 1:] + tokens[:, :1]).transpose(1, 2) for tokens in maps]

# ----------------------------------------------------------------------------
# Generator.


@persistence.persistent_class
class MappingNetwork(torch.nn.Module):
    def __init__(self,
        z_dim,                      # Width of z (also of the MLP's layers).
        c_dim,                      # Width of the text embedding appended to the MLP's output; 0 for none.
        w_dim,                      # Width of w: z_dim + c_dim.
        num_ws,                     # Copies of w to output.
        num_layers      = 2,        # Layers of the MLP (the last one linear).
        lr_multiplier   = 0.01,     # Learning rate of the MLP relative to the rest of G.
        w_avg_beta      = 0.995,    # Decay of the running average of the MLP's output (the truncation centre).
    ):
        super().__init__()
        assert w_dim == z_dim + c_dim, f'w_dim {w_dim} must be z_dim {z_dim} + c_dim {c_dim}'
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.num_ws, self.num_layers, self.w_avg_beta = num_ws, num_layers, w_avg_beta
        self.layers = torch.nn.ModuleList([
            FullyConnectedLayer(z_dim, z_dim, activation='lrelu' if idx < num_layers - 1 else 'linear',
                                lr_multiplier=lr_multiplier) for idx in range(num_layers)])
        self.register_buffer('w_avg', torch.zeros([z_dim]))

    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, update_emas=False):
        """[N, num_ws, w_dim]: the MLP's output followed by the normalised text embedding c, repeated. Truncation
        pulls only the MLP's part of the first `truncation_cutoff` ws (all when None) towards w_avg."""
        misc.assert_shape(z, [None, self.z_dim])
        latent = normalize_2nd_moment(z.to(torch.float32))
        for layer in self.layers:
            latent = layer(latent)
        if update_emas:
            self.w_avg.copy_(latent.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        latents = latent.unsqueeze(1).repeat(1, self.num_ws, 1)
        if truncation_psi != 1:
            cutoff = self.num_ws if truncation_cutoff is None else truncation_cutoff
            latents[:, :cutoff] = self.w_avg.lerp(latents[:, :cutoff], truncation_psi)
        if self.c_dim == 0:
            return latents
        misc.assert_shape(c, [z.shape[0], self.c_dim])
        text = F.normalize(c.to(torch.float32), dim=1)
        return torch.cat([latents, text.unsqueeze(1).expand(-1, self.num_ws, -1)], dim=2)

    def extra_repr(self):
        return _describe(self, 'z_dim', 'c_dim', 'w_dim', 'num_ws')


@misc.profiled_function
def modulated_conv2d(x, weight, styles, up=1, padding=0, resample_filter=None, demodulate=True):
    """Convolution of `x` [N, I, H, W] with `weight` [O, I, k, k] scaled per sample and input channel by `styles`
    [N, I], as one shared convolution of the scaled activations; demodulation gives each output filter unit norm."""
    batch_size = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape
    misc.assert_shape(styles, [batch_size, in_channels])
    if x.dtype == torch.float16 and demodulate:  # Keep float16 products in range; demodulation undoes the scale.
        weight = weight * (1 / np.sqrt(in_channels * kh * kw) / weight.norm(float('inf'), dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.norm(float('inf'), dim=1, keepdim=True)
    x = x * styles.to(x.dtype).reshape(batch_size, in_channels, 1, 1)
    x = conv2d_resample.conv2d_resample(x=x, w=weight.to(x.dtype), f=resample_filter, up=up, padding=padding,
                                        flip_weight=(up == 1))
    if demodulate:
        coefficients = (styles.square() @ weight.square().sum(dim=[2, 3]).t() + 1e-8).rsqrt()
        x = x * coefficients.to(x.dtype).reshape(batch_size, out_channels, 1, 1)
    return x


@persistence.persistent_class
class SynthesisInput(torch.nn.Module):
    """Fourier features of random frequencies within `bandwidth`, turned and shifted per sample by w."""

    def __init__(self,
        w_dim,                      # Width of w.
        channels,                   # Number of sinusoids and output channels.
        size,                       # Output side in pixels.
        sampling_rate,              # Pixels per unit length.
        bandwidth,                  # Largest frequency.
    ):
        super().__init__()
        self.w_dim, self.channels, self.size = w_dim, channels, size
        self.sampling_rate, self.bandwidth = sampling_rate, bandwidth
        directions = torch.randn([channels, 2])
        radii = directions.norm(dim=1, keepdim=True)
        # Radii spread so that the frequencies fill the disc of radius `bandwidth` about evenly.
        freqs = directions / (radii * radii.square().exp().pow(0.25)) * bandwidth
        phases = torch.rand([channels]) - 0.5
        self.weight = torch.nn.Parameter(torch.randn([channels, channels]))
        self.affine = FullyConnectedLayer(w_dim, 4)  # (cos, sin, dx, dy) of each sample's transform.
        with torch.no_grad():  # The identity transform to start with.
            self.affine.weight.zero_()
            self.affine.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0]))
        self.register_buffer('freqs', freqs)
        self.register_buffer('phases', phases)

    def forward(self, w):
        misc.assert_shape(w, [None, self.w_dim])
        turn = self.affine(w)
        turn = turn / turn[:, :2].norm(dim=1, keepdim=True)
        cos, sin, dx, dy = turn.unbind(dim=1)
        rotation = torch.stack([torch.stack([cos, -sin], dim=1), torch.stack([sin, cos], dim=1)], dim=1)  # [N, 2, 2]
        freqs = self.freqs.unsqueeze(0) @ rotation                                                     # [N, C, 2]
        shift = -torch.stack([cos * dx - sin * dy, sin * dx + cos * dy], dim=1)                          # R @ (-d)
        phases = self.phases.unsqueeze(0) + (self.freqs.unsqueeze(0) @ shift.unsqueeze(2)).squeeze(2)
        fade = (1 - (freqs.norm(dim=2) - self.bandwidth) / (self.sampling_rate / 2 - self.bandwidth)).clamp(0, 1)
        coords = (torch.arange(self.size, device=w.device, dtype=torch.float32) + 0.5 - self.size / 2) / self.sampling_rate
        waves = (freqs[:, :, 0, None, None] * coords.reshape(1, 1, 1, -1) + freqs[:, :, 1, None, None] *
                 coords.reshape(1, 1, -1, 1) + phases[:, :, None, None])
        waves = torch.sin(waves * (2 * np.pi)) * fade[:, :, None, None]
        out = (self.weight / np.sqrt(self.channels)) @ waves.flatten(2)
        return out.reshape(w.shape[0], self.channels, self.size, self.size)


@persistence.persistent_class
class SynthesisLayer(torch.nn.Module):
    """Modulated 3x3 convolution with noise and leaky ReLU; the residual form normalises its input with
    GroupNorm and adds its layer-scaled output to the input."""

    def __init__(self,
        in_channels,                # Channels in.
        out_channels,               # Channels out.
        w_dim,                      # Width of w.
        resolution,                 # Output side in pixels.
        kernel_size     = 3,        # Side of the kernel.
        up              = 1,        # Upsampling factor.
        use_noise       = True,     # Add per-pixel noise.
        resample_filter = [1, 3, 3, 1], # FIR taps of the upsampling.
        conv_clamp      = None,     # Outputs clamped to +-this; None: no clamping.
        residual        = False,    # Residual form (in_channels == out_channels, no upsampling).
        gn_groups       = 32,       # GroupNorm groups of the residual form (fewer when the channels need it).
        layer_scale_init = 1e-5,    # Starting value of the residual form's per-channel output scale.
    ):
        super().__init__()
        assert not residual or (in_channels == out_channels and up == 1)
        self.in_channels, self.out_channels, self.w_dim = in_channels, out_channels, w_dim
        self.resolution, self.up, self.use_noise = resolution, up, use_noise
        self.conv_clamp, self.residual = conv_clamp, residual
        self.padding = kernel_size // 2
        self.register_buffer('resample_filter', upfirdn2d.setup_filter(resample_filter))
        # The style is a product plus a sum of three affine maps of w, each starting near (1, 1, 0).
        self.affine1 = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.affine2 = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.affine3 = FullyConnectedLayer(w_dim, in_channels, bias_init=0)
        self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))
        if use_noise:
            self.register_buffer('noise_const', torch.randn([resolution, resolution]))
            self.noise_strength = torch.nn.Parameter(torch.zeros([]))
        if residual:
            self.gn_groups = math.gcd(gn_groups, in_channels)
            self.gamma = torch.nn.Parameter(torch.full([out_channels], np.float32(layer_scale_init)))

    def forward(self, x, w, noise_mode='random', gain=1):
        assert noise_mode in ('random', 'const', 'none')
        misc.assert_shape(x, [None, self.in_channels, self.resolution // self.up, self.resolution // self.up])
        styles = self.affine1(w) * self.affine2(w) + self.affine3(w)
        inputs = F.group_norm(x.to(torch.float32), self.gn_groups).to(x.dtype) if self.residual else x
        y = modulated_conv2d(inputs, self.weight, styles, up=self.up, padding=self.padding,
                             resample_filter=self.resample_filter)
        if self.use_noise and noise_mode != 'none':
            if noise_mode == 'random':
                noise = torch.randn([x.shape[0], 1, self.resolution, self.resolution], device=x.device)
            else:
                noise = self.noise_const
            y = y + (noise * self.noise_strength).to(y.dtype)
        clamp = None if self.conv_clamp is None else self.conv_clamp * gain
        y = bias_act.bias_act(y, self.bias.to(y.dtype), act='lrelu', gain=np.sqrt(2) * gain, clamp=clamp)
        if self.residual:
            y = (self.gamma.to(y.dtype).reshape(1, -1, 1, 1) * y + x) * np.sqrt(0.5)
        return y

    def extra_repr(self):
        return (f'in_channels={self.in_channels}, out_channels={self.out_channels}, resolution={self.resolution}, '
                f'up={self.up}, residual={self.residual}')


@persistence.persistent_class
class ToRGBLayer(torch.nn.Module):
    def __init__(self,
        in_channels,                # Channels in.
        out_channels,               # Image channels.
        w_dim,                      # Width of w.
        conv_clamp      = None,     # Outputs clamped to +-this; None: no clamping.
    ):
        super().__init__()
        self.in_channels, self.out_channels, self.conv_clamp = in_channels, out_channels, conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels, 1, 1]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / np.sqrt(in_channels)

    def forward(self, x, w):
        styles = self.affine(w) * self.weight_gain
        y = modulated_conv2d(x, self.weight, styles, demodulate=False)
        return bias_act.bias_act(y, self.bias.to(y.dtype), clamp=self.conv_clamp)


@persistence.persistent_class
class SynthesisBlock(torch.nn.Module):
    """One resolution: Fourier features (first block) or a 2x upsampling convolution, then `res_blocks` pairs of
    a convolution and a residual convolution, and a ToRGB added to the upsampled image so far."""

    def __init__(self,
        in_channels,                # Channels in; 0 for the first block.
        out_channels,               # Channels of this resolution.
        w_dim,                      # Width of w.
        resolution,                 # Side of this block's output.
        img_channels,               # Image channels.
        res_blocks      = 2,        # Pairs of [convolution, residual convolution].
        use_fp16        = False,    # Run in float16 on CUDA.
        conv_clamp      = None,     # Clamp of the convolutions' outputs; None: no clamping.
    ):
        super().__init__()
        self.in_channels, self.out_channels, self.resolution = in_channels, out_channels, resolution
        self.use_fp16 = use_fp16
        layer_kwargs = dict(w_dim=w_dim, resolution=resolution, conv_clamp=conv_clamp)
        if in_channels == 0:
            self.input = SynthesisInput(w_dim=w_dim, channels=out_channels, size=resolution, sampling_rate=resolution,
                                        bandwidth=2)
        else:
            self.conv_up = SynthesisLayer(in_channels, out_channels, up=2, **layer_kwargs)
        self.layers = torch.nn.ModuleList()
        for _ in range(res_blocks):
            self.layers.append(SynthesisLayer(out_channels, out_channels, **layer_kwargs))
            self.layers.append(SynthesisLayer(out_channels, out_channels, residual=True, **layer_kwargs))
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp)
        self.register_buffer('resample_filter', upfirdn2d.setup_filter([1, 3, 3, 1]))
        self.num_conv = 1 + len(self.layers)  # The input or the upsampling convolution, then the layers.
        self.num_torgb = 1

    def forward(self, x, img, ws, force_fp32=False, noise_mode='random'):
        """(features, image) after this block; ws [N, num_conv + num_torgb, w_dim]."""
        misc.assert_shape(ws, [None, self.num_conv + self.num_torgb, None])
        ws = ws.unbind(dim=1)
        on_cuda = ws[0].device.type == 'cuda'
        dtype = torch.float16 if self.use_fp16 and on_cuda and not force_fp32 else torch.float32
        if self.in_channels == 0:
            x = self.input(ws[0]).to(dtype)
        else:
            x = self.conv_up(x.to(dtype), ws[0], noise_mode=noise_mode)
        for layer, w in zip(self.layers, ws[1:]):
            x = layer(x, w, noise_mode=noise_mode)
        rgb = self.torgb(x, ws[-1]).to(torch.float32)
        img = rgb if img is None else upfirdn2d.upsample2d(img, self.resample_filter) + rgb
        return x, img

    def extra_repr(self):
        return f'resolution={self.resolution}, in_channels={self.in_channels}, out_channels={self.out_channels}'


@persistence.persistent_class
class SynthesisNetwork(torch.nn.Module):
    def __init__(self,
        w_dim,                      # Width of w.
        img_resolution,             # Output side in pixels (a power of two, at least 8).
        img_channels,               # Output channels.
        channel_base    = 32768,    # Layers at resolution R get min(channel_base / R, channel_max) channels.
        channel_max     = 512,      # Most channels in a layer.
        res_blocks      = 2,        # Pairs of [convolution, residual convolution] per resolution.
        num_fp16_res    = 4,        # Highest resolutions run in float16 on CUDA.
        conv_clamp      = 256,      # Clamp of the convolutions' outputs; None: no clamping.
    ):
        super().__init__()
        assert img_resolution >= 8 and img_resolution & (img_resolution - 1) == 0, 'a power of two >= 8'
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.block_resolutions = [2 ** i for i in range(3, img_resolution.bit_length())]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions}
        fp16_from = 2 ** max(img_resolution.bit_length() - num_fp16_res, 3) if num_fp16_res > 0 else img_resolution * 2
        self.num_ws = 0
        previous = 0
        for res in self.block_resolutions:
            block = SynthesisBlock(previous, channels[res], w_dim=w_dim, resolution=res, img_channels=img_channels,
                                   res_blocks=res_blocks, use_fp16=(res >= fp16_from), conv_clamp=conv_clamp)
            setattr(self, f'b{res}', block)
            self.num_ws += block.num_conv + block.num_torgb
            previous = channels[res]

    def forward(self, ws, noise_mode='random', force_fp32=False, update_emas=False):
        del update_emas  # Nothing here keeps running averages.
        misc.assert_shape(ws, [None, self.num_ws, self.w_dim])
        x = img = None
        first = 0
        for res in self.block_resolutions:
            block = getattr(self, f'b{res}')
            count = block.num_conv + block.num_torgb
            x, img = block(x, img, ws[:, first:first + count], force_fp32=force_fp32, noise_mode=noise_mode)
            first += count
        return img

    def extra_repr(self):
        return f'w_dim={self.w_dim}, num_ws={self.num_ws}, img_resolution={self.img_resolution}'


@persistence.persistent_class
class Generator(torch.nn.Module):
    def __init__(self,
        z_dim,                      # Width of z (64 in the paper).
        c_dim,                      # Width of the text embedding; 0 = unconditional.
        img_resolution,             # Output side in pixels.
        img_channels,               # Output channels.
        text_encoder_kwargs = None, # TextTransformer arguments (required when c_dim > 0).
        mapping_kwargs  = {},       # Arguments of MappingNetwork.
        **synthesis_kwargs,         # Arguments of SynthesisNetwork.
    ):
        super().__init__()
        self.z_dim, self.c_dim = z_dim, c_dim
        self.w_dim = z_dim + c_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.text_encoder = None
        if c_dim > 0:
            assert text_encoder_kwargs is not None, 'a text-conditional generator needs text_encoder_kwargs'
            self.text_encoder = TextTransformer(**text_encoder_kwargs)
            assert self.text_encoder.embed_dim == c_dim, f'c_dim {c_dim} differs from the text embedding width'
        self.synthesis = SynthesisNetwork(w_dim=self.w_dim, img_resolution=img_resolution, img_channels=img_channels,
                                          **synthesis_kwargs)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim=z_dim, c_dim=c_dim, w_dim=self.w_dim, num_ws=self.num_ws, **mapping_kwargs)

    def encode_text(self, tokens):
        """[N, context_length] token ids -> [N, c_dim] unit-length embeddings (the c of forward())."""
        assert self.text_encoder is not None, 'this generator is not text-conditional'
        return self.text_encoder(tokens)

    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, update_emas=False, **synthesis_kwargs):
        """Images [N, img_channels, R, R] for latents z and text embeddings c ([N, c_dim]; see encode_text())."""
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                          update_emas=update_emas)
        return self.synthesis(ws, update_emas=update_emas, **synthesis_kwargs)

# ----------------------------------------------------------------------------
# Discriminator.


def diff_augment(x, translation=0.125, cutout=0.2):
    """DiffAugment (Zhao et al. 2020) of images in [-1, 1]: random brightness, saturation and contrast per
    sample, a shift by up to `translation` of the side (zeros enter), and a zeroed square of `cutout` x side."""
    batch, _channels, height, width = x.shape
    rand = lambda: torch.rand([batch, 1, 1, 1], device=x.device, dtype=x.dtype)  # noqa: E731
    x = x + (rand() - 0.5)
    grey = x.mean(dim=1, keepdim=True)
    x = (x - grey) * (rand() * 2) + grey
    average = x.mean(dim=[1, 2, 3], keepdim=True)
    x = (x - average) * (rand() + 0.5) + average

    # Shift: pad with one ring of zeros and read every pixel from its shifted place, clamped into the padding.
    reach_y, reach_x = int(height * translation + 0.5), int(width * translation + 0.5)
    shift_y = torch.randint(-reach_y, reach_y + 1, [batch, 1, 1], device=x.device)
    shift_x = torch.randint(-reach_x, reach_x + 1, [batch, 1, 1], device=x.device)
    rows = (torch.arange(height, device=x.device).reshape(1, -1, 1) + shift_y + 1).clamp(0, height + 1)
    cols = (torch.arange(width, device=x.device).reshape(1, 1, -1) + shift_x + 1).clamp(0, width + 1)
    padded = F.pad(x, [1, 1, 1, 1])
    index = (rows * (width + 2) + cols).reshape(batch, 1, -1).expand(-1, x.shape[1], -1)
    x = padded.flatten(2).gather(2, index).reshape(x.shape)

    # Cutout.
    size_y, size_x = int(height * cutout + 0.5), int(width * cutout + 0.5)
    centre_y = torch.randint(0, height + (1 - size_y % 2), [batch, 1, 1], device=x.device)
    centre_x = torch.randint(0, width + (1 - size_x % 2), [batch, 1, 1], device=x.device)
    in_y = torch.arange(height, device=x.device).reshape(1, -1, 1) - centre_y + size_y // 2
    in_x = torch.arange(width, device=x.device).reshape(1, 1, -1) - centre_x + size_x // 2
    hole = (in_y >= 0) & (in_y < size_y) & (in_x >= 0) & (in_x < size_x)
    return x * (~hole).unsqueeze(1).to(x.dtype)


@persistence.persistent_class
class SpectralConv1d(torch.nn.Module):
    """1-D convolution whose weight is divided by its largest singular value (spectral normalisation, one
    power iteration per training forward pass); circular padding keeps the token count."""

    def __init__(self,
        in_channels,                # Channels in.
        out_channels,               # Channels out.
        kernel_size     = 1,        # Taps.
    ):
        super().__init__()
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        bound = 1 / np.sqrt(in_channels * kernel_size)
        self.weight = torch.nn.Parameter(torch.empty([out_channels, in_channels, kernel_size]).uniform_(-bound, bound))
        self.bias = torch.nn.Parameter(torch.empty([out_channels]).uniform_(-bound, bound))
        self.register_buffer('u', F.normalize(torch.randn([out_channels]), dim=0))

    def normalized_weight(self):
        matrix = self.weight.flatten(1)
        if self.training:
            with torch.no_grad():
                v = F.normalize(matrix.t() @ self.u, dim=0)
                self.u.copy_(F.normalize(matrix @ v, dim=0))
        u = self.u.clone()
        v = F.normalize(matrix.t().detach() @ u, dim=0)
        sigma = u @ matrix @ v
        return self.weight / sigma

    def forward(self, x):
        pad = self.kernel_size // 2
        if pad > 0:
            x = F.pad(x, [pad, pad], mode='circular')
        return F.conv1d(x, self.normalized_weight().to(x.dtype), self.bias.to(x.dtype))

    def extra_repr(self):
        return f'in_channels={self.in_channels}, out_channels={self.out_channels}, kernel_size={self.kernel_size}'


@persistence.persistent_class
class LocalBatchNorm(torch.nn.Module):
    """Batch normalisation over groups of `virtual_batch` samples (statistics over the group and the tokens),
    without running statistics, with a learned scale and shift."""

    def __init__(self,
        channels,                   # Channels.
        virtual_batch   = 8,        # Samples per group.
        eps             = 1e-5,     # Added to the variance.
    ):
        super().__init__()
        self.channels, self.virtual_batch, self.eps = channels, virtual_batch, eps
        self.weight = torch.nn.Parameter(torch.ones([channels]))
        self.bias = torch.nn.Parameter(torch.zeros([channels]))

    def forward(self, x):
        batch, channels, tokens = x.shape
        group = min(self.virtual_batch, batch)
        while batch % group:  # The largest group size up to virtual_batch that divides the batch.
            group -= 1
        grouped = x.reshape(batch // group, group, channels, tokens)
        mean = grouped.mean(dim=[1, 3], keepdim=True)
        var = grouped.var(dim=[1, 3], keepdim=True, unbiased=False)
        x = ((grouped - mean) * (var + self.eps).rsqrt()).reshape(batch, channels, tokens)
        return x * self.weight.reshape(1, -1, 1) + self.bias.reshape(1, -1, 1)


@persistence.persistent_class
class DiscriminatorHead(torch.nn.Module):
    """Per-token logits from one feature map: a 1-tap layer, a residual 9-tap layer and a projection onto the
    mapped text embedding (or a plain 1-channel output without text)."""

    def __init__(self,
        channels,                   # Channels of the feature map.
        c_dim,                      # Width of the text embedding; 0 = unconditional.
        cmap_dim        = 64,       # Width of the projection.
        kernel_size     = 9,        # Taps of the residual layer.
        virtual_batch   = 8,        # Group size of the batch normalisation.
    ):
        super().__init__()
        self.channels, self.c_dim, self.cmap_dim = channels, c_dim, cmap_dim
        self.conv1 = SpectralConv1d(channels, channels, 1)
        self.norm1 = LocalBatchNorm(channels, virtual_batch)
        self.conv2 = SpectralConv1d(channels, channels, kernel_size)
        self.norm2 = LocalBatchNorm(channels, virtual_batch)
        self.out = SpectralConv1d(channels, cmap_dim if c_dim > 0 else 1, 1)
        if c_dim > 0:
            self.cmapper = FullyConnectedLayer(c_dim, cmap_dim)

    def forward(self, x, c):
        """[N, channels, tokens] -> [N, tokens]."""
        h = F.leaky_relu(self.norm1(self.conv1(x)), 0.2)
        h = (F.leaky_relu(self.norm2(self.conv2(h)), 0.2) + h) * np.sqrt(0.5)
        out = self.out(h)
        if self.c_dim > 0:
            out = (out * self.cmapper(c).unsqueeze(2)).sum(dim=1) * (1 / np.sqrt(self.cmap_dim))
        return out.flatten(1)


@persistence.persistent_class
class Discriminator(torch.nn.Module):
    def __init__(self,
        c_dim,                      # Width of the text embedding; 0 = unconditional.
        img_resolution,             # Side of the input images.
        img_channels,               # Channels of the input images (1 is repeated to RGB).
        backbone_kwargs = {},       # VisionTransformer arguments (the frozen feature network).
        cmap_dim        = 64,       # Width of the text projection in each head.
        diffaugment     = True,     # DiffAugment (colour, translation, cutout) in training mode.
        crop_prob       = 0.5,      # Chance of a random backbone-sized crop of larger images in training mode.
        virtual_batch   = 8,        # Group size of the heads' batch normalisation.
    ):
        super().__init__()
        self.c_dim, self.img_resolution, self.img_channels = c_dim, img_resolution, img_channels
        self.diffaugment, self.crop_prob = diffaugment, crop_prob
        self.backbone = VisionTransformer(**backbone_kwargs)
        self.heads = torch.nn.ModuleList([DiscriminatorHead(self.backbone.width, c_dim, cmap_dim=cmap_dim,
                                                            virtual_batch=virtual_batch)
                                          for _ in range(len(self.backbone.hooks) + 1)])

    def backbone_input(self, img):
        """Images in [-1, 1] -> what the backbone expects: augmented (training), [0, 1], cropped (training, by
        chance), area-resized to the backbone's size, normalised."""
        x = img.to(torch.float32)
        if self.img_channels == 1:
            x = x.repeat(1, 3, 1, 1)
        if self.training and self.diffaugment:
            x = diff_augment(x)
        x = (x + 1) / 2
        size = self.backbone.img_size
        if self.training and x.shape[2] > size and float(torch.rand([])) < self.crop_prob:
            top, left = (int(torch.randint(0, x.shape[dim] - size + 1, [])) for dim in (2, 3))
            x = x[:, :, top:top + size, left:left + size]
        if x.shape[2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode='area')
        mean = torch.tensor(self.backbone.mean, device=x.device).reshape(1, -1, 1, 1)
        std = torch.tensor(self.backbone.std, device=x.device).reshape(1, -1, 1, 1)
        return (x - mean) / std

    def forward(self, img, c, update_emas=False):
        """[N, tokens of all heads] logits for images [N, C, R, R] in [-1, 1] and text embeddings c [N, c_dim]."""
        del update_emas  # Nothing here keeps running averages.
        misc.assert_shape(img, [None, self.img_channels, self.img_resolution, self.img_resolution])
        if self.c_dim > 0:
            misc.assert_shape(c, [img.shape[0], self.c_dim])
            c = F.normalize(c.to(torch.float32), dim=1)
        maps = self.backbone(self.backbone_input(img))
        return torch.cat([head(features, c) for head, features in zip(self.heads, maps)], dim=1)

    def extra_repr(self):
        return f'c_dim={self.c_dim}, img_resolution={self.img_resolution}, img_channels={self.img_channels}'

# ----------------------------------------------------------------------------
