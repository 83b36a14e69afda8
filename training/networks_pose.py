"""The pose-to-latent network of pose-driven video: a sequence of per-frame pose features (training/pose.py)
in, one StyleGAN latent per frame out, so that a pose sequence renders as a video through the generator.

The architecture is the one of the public pose-to-video project: a dense projection, a stack of LSTMs and a
linear map to w. The network carries its own normalisation as buffers (the training set's feature mean and
spread, and the mean and spread of its latents), so a pickle of it is self-contained. Its parameters are
plain tensors of this module rather than torch.nn.LSTM submodules: the safe loader then rebuilds it from
its recorded arguments like any other network of this project.
"""

import numpy as np
import torch

from torch_utils import misc
from torch_utils import persistence

# ----------------------------------------------------------------------------


@persistence.persistent_class
class PoseToLatent(torch.nn.Module):
    def __init__(self,
        feature_dim,            # Length of a frame's pose features (training.pose.feature_dim).
        w_dim,                  # Width of the generator's latent w.
        num_ws,                 # Latents the generator's synthesis network takes per image.
        w_plus      = False,    # Predict one w per layer (W+ projections) instead of one shared by every layer.
        hidden      = 512,      # Width of the dense projection and of every LSTM layer.
        layers      = 4,        # Stacked LSTM layers.
    ):
        super().__init__()
        self.feature_dim = feature_dim
        self.w_dim = w_dim
        self.num_ws = num_ws
        self.w_plus = w_plus
        self.hidden = hidden
        self.layers = layers
        self.w_layers = num_ws if w_plus else 1

        self.input_weight = torch.nn.Parameter(torch.randn([hidden, feature_dim]) / np.sqrt(feature_dim))
        self.input_bias = torch.nn.Parameter(torch.zeros([hidden]))
        # Gate rows in torch.lstm's order (input, forget, cell, output); uniform in +-1/sqrt(hidden) as torch's LSTM.
        bound = 1 / np.sqrt(hidden)
        for layer in range(layers):
            for name, shape in (('weight_ih', [4 * hidden, hidden]), ('weight_hh', [4 * hidden, hidden]),
                                ('bias_ih', [4 * hidden]), ('bias_hh', [4 * hidden])):
                setattr(self, f'lstm{layer}_{name}', torch.nn.Parameter(torch.empty(shape).uniform_(-bound, bound)))
        self.output_weight = torch.nn.Parameter(torch.randn([self.w_layers * w_dim, hidden]) / np.sqrt(hidden))
        self.output_bias = torch.nn.Parameter(torch.zeros([self.w_layers * w_dim]))

        # Normalisation, set from the training data (set_normalisation) and pickled with the weights.
        self.register_buffer('feature_mean', torch.zeros([feature_dim]))
        self.register_buffer('feature_std', torch.ones([feature_dim]))
        self.register_buffer('w_mean', torch.zeros([self.w_layers, w_dim]))
        self.register_buffer('w_std', torch.ones([]))

    def lstm_parameters(self):
        """The LSTM's tensors in torch.lstm's flat order: per layer weight_ih, weight_hh, bias_ih, bias_hh."""
        return [getattr(self, f'lstm{layer}_{name}') for layer in range(self.layers)
                for name in ('weight_ih', 'weight_hh', 'bias_ih', 'bias_hh')]

    @torch.no_grad()
    def set_normalisation(self, features, ws):
        """Feature mean and spread per dimension from `features` [N, feature_dim] (a dimension that never varies
        keeps spread 1), latent mean per layer and overall spread from `ws` [N, w_layers, w_dim]."""
        features = torch.as_tensor(features, dtype=torch.float64)
        ws = torch.as_tensor(ws, dtype=torch.float64)
        misc.assert_shape(features, [None, self.feature_dim])
        misc.assert_shape(ws, [features.shape[0], self.w_layers, self.w_dim])
        std = features.std(dim=0, unbiased=False)
        self.feature_mean.copy_(features.mean(dim=0))
        self.feature_std.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)))
        w_mean = ws.mean(dim=0)
        self.w_mean.copy_(w_mean)
        self.w_std.copy_((ws - w_mean).square().mean().sqrt().clamp(min=1e-6))

    def forward(self, features, state=None, return_state=False):
        """features [batch, frames, feature_dim] -> ws [batch, frames, num_ws, w_dim]. `state` continues a
        sequence where an earlier call stopped (the (h, c) that return_state=True gives)."""
        misc.assert_shape(features, [None, None, self.feature_dim])
        batch, frames = features.shape[:2]
        x = (features.to(torch.float32) - self.feature_mean) / self.feature_std
        x = torch.nn.functional.linear(x, self.input_weight, self.input_bias)
        if state is None:
            zeros = x.new_zeros([self.layers, batch, self.hidden])
            state = (zeros, zeros)
        x, h, c = torch.lstm(x, state, self.lstm_parameters(), True, self.layers, 0.0, self.training, False, True)
        x = torch.nn.functional.linear(x, self.output_weight, self.output_bias)
        ws = self.w_mean + self.w_std * x.reshape(batch, frames, self.w_layers, self.w_dim)
        ws = ws.expand(batch, frames, self.num_ws, self.w_dim)
        return (ws, (h, c)) if return_state else ws

    def extra_repr(self):
        return (f'feature_dim={self.feature_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}, w_plus={self.w_plus}, '
                f'hidden={self.hidden}, layers={self.layers}')

# ----------------------------------------------------------------------------
