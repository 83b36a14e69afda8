"""Unit tests of the loss pieces on tiny hand-made networks."""

import numpy as np
import pytest
import torch

from torch_utils import training_stats
from torch_utils.ops import upfirdn2d
from training import loss as loss_module

# ----------------------------------------------------------------------------
# Tiny networks with known gradients.


class LinearMapping(torch.nn.Module):
    def __init__(self, z_dim, num_ws):
        super().__init__()
        self.num_ws = num_ws
        self.weight = torch.nn.Parameter(torch.randn([z_dim, z_dim]) * 0.5)

    def forward(self, z, c, update_emas=False):
        del c, update_emas
        return (z @ self.weight)[:, None, :].repeat(1, self.num_ws, 1)


class LinearSynthesis(torch.nn.Module):
    def __init__(self, num_ws, w_dim, res):
        super().__init__()
        self.res = res
        self.weight = torch.nn.Parameter(torch.randn([num_ws * w_dim, 3 * res * res]) * 0.1)

    def forward(self, ws, update_emas=False):
        del update_emas
        return (ws.flatten(1) @ self.weight).reshape(-1, 3, self.res, self.res)


class TinyG(torch.nn.Module):
    def __init__(self, z_dim=4, num_ws=3, res=4):
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = 0
        self.num_ws = num_ws
        self.mapping = LinearMapping(z_dim, num_ws)
        self.synthesis = LinearSynthesis(num_ws, z_dim, res)


class LinearD(torch.nn.Module):
    """logits = <img, weight> + bias: its input gradient is `weight` for every sample."""

    def __init__(self, res=4):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn([3, res, res]) * 0.3)
        self.bias = torch.nn.Parameter(torch.zeros([]))

    def forward(self, img, c, update_emas=False):
        del c, update_emas
        return (img * self.weight).sum([1, 2, 3])[:, None] + self.bias


class QuadraticD(torch.nn.Module):
    """logits = sum(weight * img^2): input gradient 2 * weight * img."""

    def __init__(self, res=4):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn([3, res, res]))

    def forward(self, img, c, update_emas=False):
        del c, update_emas
        return (self.weight * img.square()).sum([1, 2, 3])[:, None]


def training_mode(train, frozen):
    """As in the training loop: only the network of the current phase requires gradients."""
    train.requires_grad_(True)
    frozen.requires_grad_(False)


def make_inputs(batch=4, res=4, z_dim=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    real_img = torch.randn([batch, 3, res, res], generator=gen)
    gen_z = torch.randn([batch, z_dim], generator=gen)
    c = torch.zeros([batch, 0])
    return real_img, c, gen_z, c


def grads_of(module):
    return {name: None if p.grad is None else p.grad.clone() for name, p in module.named_parameters()}

# ----------------------------------------------------------------------------


def test_r1_penalty_matches_hand_computed_gradient_norm():
    torch.manual_seed(0)
    D = QuadraticD()
    real_img = torch.randn([5, 3, 4, 4]).requires_grad_(True)
    penalty = loss_module.r1_penalty(D(real_img, None), real_img)
    expected = (2 * D.weight * real_img).square().sum([1, 2, 3])
    torch.testing.assert_close(penalty, expected)
    # Its own gradient reaches D's weights (second-order): d/dw sum_i |2 w x_i|^2 = 8 w sum_i x_i^2.
    penalty.sum().backward()
    torch.testing.assert_close(D.weight.grad, 8 * D.weight.detach() * real_img.detach().square().sum(0))


def test_dmain_and_dreg_gradients_match_formulas():
    torch.manual_seed(1)
    G, D = TinyG(), LinearD()
    real_img, real_c, gen_z, gen_c = make_inputs()
    r1_gamma = 3.0
    loss = loss_module.StyleGAN2Loss(device=torch.device('cpu'), G=G, D=D, r1_gamma=r1_gamma)

    training_mode(D, G)
    loss.accumulate_gradients('Dmain', real_img, real_c, gen_z, gen_c, gain=2.0, cur_nimg=0)
    gen_img = G.synthesis(G.mapping(gen_z, gen_c)).detach()
    with torch.no_grad():
        fake_logits = D(gen_img, gen_c)[:, 0]
        real_logits = D(real_img, real_c)[:, 0]
    # d softplus(l)/dl = sigmoid(l); dl/dweight = img.
    expected = 2.0 * ((torch.sigmoid(fake_logits)[:, None, None, None] * gen_img).mean(0)
                      - (torch.sigmoid(-real_logits)[:, None, None, None] * real_img).mean(0))
    torch.testing.assert_close(D.weight.grad, expected, rtol=1e-4, atol=1e-5)
    assert all(p.grad is None for p in G.parameters()), 'Dmain must not train G'

    # Dreg on a linear D: penalty |w|^2 * gamma/2 -> gradient gamma * w (times gain).
    D.zero_grad(set_to_none=True)
    loss.accumulate_gradients('Dreg', real_img, real_c, gen_z, gen_c, gain=16.0, cur_nimg=0)
    torch.testing.assert_close(D.weight.grad, 16.0 * r1_gamma * D.weight.detach(), rtol=1e-5, atol=1e-6)


def test_gmain_is_non_saturating_and_trains_only_g():
    torch.manual_seed(2)
    G, D = TinyG(), LinearD()
    real_img, real_c, gen_z, gen_c = make_inputs()
    loss = loss_module.StyleGAN2Loss(device=torch.device('cpu'), G=G, D=D)
    training_mode(G, D)
    loss.accumulate_gradients('Gmain', real_img, real_c, gen_z, gen_c, gain=1.0, cur_nimg=0)
    actual = grads_of(G)

    G_ref = TinyG()
    G_ref.load_state_dict(G.state_dict())
    logits = D(G_ref.synthesis(G_ref.mapping(gen_z, gen_c)), gen_c)
    torch.nn.functional.softplus(-logits).mean().backward()
    for name, p in G_ref.named_parameters():
        torch.testing.assert_close(actual[name], p.grad)
    assert D.weight.grad is None


def test_zero_weights_disable_regularisation_phases():
    G, D = TinyG(), LinearD()
    real_img, real_c, gen_z, gen_c = make_inputs()
    loss = loss_module.StyleGAN2Loss(device=torch.device('cpu'), G=G, D=D, r1_gamma=0, pl_weight=0)
    G.requires_grad_(True)
    D.requires_grad_(True)
    loss.accumulate_gradients('Greg', real_img, real_c, gen_z, gen_c, gain=4.0, cur_nimg=0)
    loss.accumulate_gradients('Dreg', real_img, real_c, gen_z, gen_c, gain=16.0, cur_nimg=0)
    assert all(p.grad is None for p in list(G.parameters()) + list(D.parameters()))


def test_path_length_penalty_updates_running_mean():
    torch.manual_seed(3)
    G, D = TinyG(), LinearD()
    real_img, real_c, gen_z, gen_c = make_inputs(batch=6)
    loss = loss_module.StyleGAN2Loss(device=torch.device('cpu'), G=G, D=D, pl_weight=2, pl_batch_shrink=2,
                                     pl_decay=0.25)
    training_mode(G, D)
    torch.manual_seed(10)
    loss.accumulate_gradients('Greg', real_img, real_c, gen_z, gen_c, gain=1.0, cur_nimg=0)

    # Same computation by hand with the same noise: ws -> img is linear, so J^T y = A y per w.
    torch.manual_seed(10)
    ws = G.mapping(gen_z[:3], gen_c[:3]).detach()
    img = G.synthesis(ws).detach()
    noise = torch.randn_like(img) / np.sqrt(img.shape[2] * img.shape[3])
    jty = (G.synthesis.weight.detach() @ noise.flatten(1).T).T.reshape(ws.shape)
    lengths = jty.square().sum(2).mean(1).sqrt()
    torch.testing.assert_close(loss.pl_mean, 0.25 * lengths.mean())
    assert G.synthesis.weight.grad is not None and float(G.synthesis.weight.grad.abs().sum()) > 0


def test_blur_fades_linearly_and_is_a_normalised_gaussian():
    assert loss_module.blur_sigma_at(0, 10, 100) == 10
    assert loss_module.blur_sigma_at(50_000, 10, 100) == pytest.approx(5)
    assert loss_module.blur_sigma_at(200_000, 10, 100) == 0
    assert loss_module.blur_sigma_at(0, 10, 0) == 0

    img = torch.randn([2, 3, 16, 16])
    assert loss_module.blur_images(img, 0) is img
    flat = torch.full([1, 1, 16, 16], 0.7)
    torch.testing.assert_close(loss_module.blur_images(flat, 1.5)[..., 5:11, 5:11], flat[..., 5:11, 5:11])
    # Against a direct separable filter with taps 2^-(x/sigma)^2 at x = -4..4.
    taps = torch.tensor([2.0 ** (-(x / 1.5) ** 2) for x in range(-4, 5)])
    expected = upfirdn2d.filter2d(img, taps / taps.sum(), impl='ref')
    torch.testing.assert_close(loss_module.blur_images(img, 1.5), expected, rtol=1e-5, atol=1e-6)


def test_style_mixing_cutoff_distribution():
    torch.manual_seed(4)
    never = {int(loss_module.draw_mixing_cutoff(6, 0.0, torch.device('cpu'))) for _ in range(50)}
    always = [int(loss_module.draw_mixing_cutoff(6, 1.0, torch.device('cpu'))) for _ in range(200)]
    assert never == {6}
    assert set(always) == {1, 2, 3, 4, 5}


def test_style_mixing_replaces_trailing_ws():
    torch.manual_seed(5)
    G, D = TinyG(num_ws=5), LinearD()
    loss = loss_module.StyleGAN2Loss(device=torch.device('cpu'), G=G, D=D, style_mixing_prob=1.0)
    _, _, gen_z, gen_c = make_inputs()
    _img, ws = loss.run_G(gen_z, gen_c)
    plain = G.mapping(gen_z, gen_c)
    same = (ws == plain).all(2).all(0)
    cutoff = int(same.int().argmin())
    assert 1 <= cutoff < 5 and same[:cutoff].all() and not same[cutoff:].any()


def test_reports_statistics_with_official_names():
    G, D = TinyG(), LinearD()
    real_img, real_c, gen_z, gen_c = make_inputs()
    loss = loss_module.StyleGAN2Loss(device=torch.device('cpu'), G=G, D=D, pl_weight=1)
    collector = training_stats.Collector(regex='Loss/.*', keep_previous=False)
    for phase in ('Gmain', 'Greg', 'Dmain', 'Dreg'):
        loss.accumulate_gradients(phase, real_img, real_c, gen_z, gen_c, gain=1.0, cur_nimg=0)
    collector.update()
    for name in ('Loss/scores/fake', 'Loss/signs/fake', 'Loss/G/loss', 'Loss/pl_penalty', 'Loss/G/reg',
                 'Loss/scores/real', 'Loss/signs/real', 'Loss/D/loss', 'Loss/r1_penalty', 'Loss/D/reg'):
        assert collector.num(name) > 0, name


def test_wgangp_penalty_and_critic_loss():
    torch.manual_seed(6)
    G, D = TinyG(), LinearD()
    real_img, real_c, gen_z, gen_c = make_inputs()
    loss = loss_module.WGANGPLoss(device=torch.device('cpu'), G=G, D=D, gp_weight=10, drift_weight=0)
    # A linear critic has gradient `weight` everywhere: penalty (|w| - 1)^2 for every sample.
    gen_img = G.synthesis(G.mapping(gen_z, gen_c)).detach()
    penalty = loss.gradient_penalty(real_img, gen_img, real_c, blur_sigma=0)
    torch.testing.assert_close(penalty, (D.weight.detach().norm() - 1).square().expand(4))

    training_mode(D, G)
    loss.accumulate_gradients('Dmain', real_img, real_c, gen_z, gen_c, gain=1.0, cur_nimg=0)
    torch.testing.assert_close(D.weight.grad, gen_img.mean(0) - real_img.mean(0), rtol=1e-4, atol=1e-5)

# ----------------------------------------------------------------------------
