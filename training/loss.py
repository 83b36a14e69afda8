"""Loss functions for GAN training: the StyleGAN2 loss (non-saturating logistic loss with R1 and
path length regularisation) and a Wasserstein loss with gradient penalty (WGAN-GP).

A loss object is called once per round of a training phase:
`accumulate_gradients(phase, real_img, real_c, gen_z, gen_c, gain, cur_nimg)` runs the forward
passes of that phase and back-propagates `loss.mean() * gain` into the networks' `.grad`s. The
phases are 'Gmain', 'Greg', 'Gboth', 'Dmain', 'Dreg', 'Dboth' (main loss, regularisation, or both).
"""

import numpy as np
import torch

from torch_utils import training_stats
from torch_utils.ops import conv2d_gradfix
from torch_utils.ops import upfirdn2d

PHASES = ('Gmain', 'Greg', 'Gboth', 'Dmain', 'Dreg', 'Dboth')

# ----------------------------------------------------------------------------
# Small pure pieces (also used by the tests).


def blur_sigma_at(cur_nimg, blur_init_sigma, blur_fade_kimg):
    """Sigma of the blur applied to images fed to D: fades linearly from blur_init_sigma to 0."""
    if blur_fade_kimg <= 0:
        return 0
    return max(1 - cur_nimg / (blur_fade_kimg * 1e3), 0) * blur_init_sigma


def blur_images(img, blur_sigma):
    """Filters `img` with the StyleGAN3 blur kernel 2^-(x/sigma)^2, truncated at 3 sigma."""
    blur_size = int(np.floor(blur_sigma * 3))
    if blur_size <= 0:
        return img
    taps = torch.arange(-blur_size, blur_size + 1, device=img.device, dtype=torch.float32)
    f = taps.div(blur_sigma).square().neg().exp2()
    return upfirdn2d.filter2d(img, f / f.sum())


def draw_mixing_cutoff(num_ws, style_mixing_prob, device):
    """Index from which the ws of a second latent replace the first; num_ws = no mixing this batch."""
    cutoff = torch.empty([], dtype=torch.int64, device=device).random_(1, num_ws)
    no_mixing = torch.full_like(cutoff, num_ws)
    return torch.where(torch.rand([], device=device) < style_mixing_prob, cutoff, no_mixing)


def r1_penalty(real_logits, real_img):
    """Squared norm of the gradient of D's logits w.r.t. the real images, per sample."""
    with conv2d_gradfix.no_weight_gradients():
        (slope,) = torch.autograd.grad(real_logits.sum(), real_img, create_graph=True)
    return slope.square().sum([1, 2, 3])


def path_lengths(gen_img, gen_ws, pl_no_weight_grad):
    """Length of J_w^T y for a random image-space direction y, per sample (StyleGAN2, eq. 4)."""
    height, width = gen_img.shape[2:]
    direction = torch.randn_like(gen_img) / np.sqrt(height * width)
    with conv2d_gradfix.no_weight_gradients(pl_no_weight_grad):
        (jacobian_product,) = torch.autograd.grad((gen_img * direction).sum(), gen_ws, create_graph=True)
    return jacobian_product.square().sum(2).mean(1).sqrt()

# ----------------------------------------------------------------------------


class GeneratorDiscriminatorRunner:
    """Runs G (with optional style mixing) and D (with optional blur and augmentation) for a loss."""

    def __init__(self, device, G, D, augment_pipe=None, style_mixing_prob=0, blur_init_sigma=0, blur_fade_kimg=0):
        self.device, self.G, self.D, self.augment_pipe = device, G, D, augment_pipe
        self.style_mixing_prob = style_mixing_prob
        self.blur_init_sigma, self.blur_fade_kimg = blur_init_sigma, blur_fade_kimg  # See blur_sigma_at().

    def run_G(self, z, c, update_emas=False):
        """(images, ws) of G for latents z and labels c."""
        ws = self.G.mapping(z, c, update_emas=update_emas)
        if self.style_mixing_prob > 0:
            ws = self._mix_styles(ws, z, c)
        return self.G.synthesis(ws, update_emas=update_emas), ws

    def _mix_styles(self, ws, z, c):
        """With probability style_mixing_prob, the ws from a random layer on come from another latent."""
        with torch.autograd.profiler.record_function('style_mixing'):
            num_ws = ws.shape[1]
            cutoff = draw_mixing_cutoff(num_ws, self.style_mixing_prob, ws.device)
            other_ws = self.G.mapping(torch.randn_like(z), c, update_emas=False)
            from_other = torch.arange(num_ws, device=ws.device).ge(cutoff).view(1, num_ws, 1)
            return torch.where(from_other, other_ws, ws)

    def run_D(self, img, c, blur_sigma=0, update_emas=False):
        """D's logits for images, blurred (early in training) and augmented as configured."""
        seen = blur_images(img, blur_sigma)
        if self.augment_pipe is not None:
            seen = self.augment_pipe(seen)
        return self.D(seen, c, update_emas=update_emas)

    def blur_sigma(self, cur_nimg):
        return blur_sigma_at(cur_nimg, self.blur_init_sigma, self.blur_fade_kimg)

# ----------------------------------------------------------------------------


def _report_logits(kind, logits):
    training_stats.report(f'Loss/scores/{kind}', logits)
    training_stats.report(f'Loss/signs/{kind}', logits.sign())


def _backward(label, loss, gain):
    """Gradients of the batch-mean loss, scaled by `gain` (1 / accumulation rounds), into the networks."""
    with torch.autograd.profiler.record_function(label + '_backward'):
        loss.mean().mul(gain).backward()


class StyleGAN2Loss(GeneratorDiscriminatorRunner):
    """Non-saturating logistic loss, R1 on reals, path length regularisation, style mixing, D-input blur."""

    def __init__(self,
        device,                         # Device of the networks.
        G,                              # Generator (mapping + synthesis).
        D,                              # Discriminator.
        augment_pipe        = None,     # Augmentation applied to every image D sees; None = disable.
        r1_gamma            = 10,       # R1 regularisation weight.
        style_mixing_prob   = 0,        # Probability of mixing the styles of two latents in a batch.
        pl_weight           = 0,        # Path length regularisation weight; 0 = disable.
        pl_batch_shrink     = 2,        # Fraction of the batch used for the path length penalty.
        pl_decay            = 0.01,     # Decay of the running mean of path lengths.
        pl_no_weight_grad   = False,    # Skip conv weight gradients inside the path length gradient.
        blur_init_sigma     = 0,        # Initial sigma of the blur applied to D's inputs; 0 = disable.
        blur_fade_kimg      = 0,        # Length of the linear fade-out of that blur, in kimg.
    ):
        super().__init__(device=device, G=G, D=D, augment_pipe=augment_pipe, style_mixing_prob=style_mixing_prob,
                         blur_init_sigma=blur_init_sigma, blur_fade_kimg=blur_fade_kimg)
        self.r1_gamma = r1_gamma
        self.pl_weight, self.pl_batch_shrink, self.pl_decay = pl_weight, pl_batch_shrink, pl_decay
        self.pl_no_weight_grad = pl_no_weight_grad
        self.pl_mean = torch.zeros([], device=device)  # Running mean of the path lengths (training state).

    def accumulate_gradients(self, phase, real_img, real_c, gen_z, gen_c, gain, cur_nimg):
        assert phase in PHASES
        # A regularisation phase whose weight is zero does nothing; a "both" phase does the main loss only.
        if self.pl_weight == 0:
            phase = {'Greg': 'none', 'Gboth': 'Gmain'}.get(phase, phase)
        if self.r1_gamma == 0:
            phase = {'Dreg': 'none', 'Dboth': 'Dmain'}.get(phase, phase)
        blur_sigma = self.blur_sigma(cur_nimg)
        if phase in ('Gmain', 'Gboth'):
            self._fool_discriminator(gen_z, gen_c, gain, blur_sigma)
        if phase in ('Greg', 'Gboth'):
            self._regularise_path_lengths(gen_z, gen_c, gain)
        fake_loss = 0
        if phase in ('Dmain', 'Dboth'):
            fake_loss = self._reject_fakes(gen_z, gen_c, gain, blur_sigma)
        if phase in ('Dmain', 'Dreg', 'Dboth'):
            self._judge_reals(phase, real_img, real_c, gain, blur_sigma, fake_loss)

    def _fool_discriminator(self, gen_z, gen_c, gain, blur_sigma):
        """G's non-saturating loss, softplus(-D(G(z))) = -log sigmoid(D(G(z)))."""
        with torch.autograd.profiler.record_function('Gmain_forward'):
            fake_img, _ws = self.run_G(gen_z, gen_c)
            fake_logits = self.run_D(fake_img, gen_c, blur_sigma=blur_sigma)
            _report_logits('fake', fake_logits)
            loss = training_stats.report('Loss/G/loss', torch.nn.functional.softplus(-fake_logits))
        _backward('Gmain', loss, gain)

    def _regularise_path_lengths(self, gen_z, gen_c, gain):
        """Path length penalty on a part of the batch: (length - its running mean)^2, weighted by pl_weight."""
        with torch.autograd.profiler.record_function('Gpl_forward'):
            rows = max(gen_z.shape[0] // self.pl_batch_shrink, 1)
            fake_img, ws = self.run_G(gen_z[:rows], gen_c[:rows])
            lengths = path_lengths(fake_img, ws, self.pl_no_weight_grad)
            running_mean = self.pl_mean.lerp(lengths.mean(), self.pl_decay)
            self.pl_mean.copy_(running_mean.detach())
            penalty = training_stats.report('Loss/pl_penalty', (lengths - running_mean).square())
            loss = training_stats.report('Loss/G/reg', penalty * self.pl_weight)
        _backward('Gpl', loss, gain)

    def _reject_fakes(self, gen_z, gen_c, gain, blur_sigma):
        """D's loss on generated images, softplus(D(G(z))) = -log(1 - sigmoid(D(G(z)))); returned for the report
        of D's total loss."""
        with torch.autograd.profiler.record_function('Dgen_forward'):
            fake_img, _ws = self.run_G(gen_z, gen_c, update_emas=True)
            fake_logits = self.run_D(fake_img, gen_c, blur_sigma=blur_sigma, update_emas=True)
            _report_logits('fake', fake_logits)
            loss = torch.nn.functional.softplus(fake_logits)
        _backward('Dgen', loss, gain)
        return loss

    def _judge_reals(self, phase, real_img, real_c, gain, blur_sigma, fake_loss):
        """On reals: D's loss softplus(-D(x)) (main phases) and the R1 penalty gamma/2 |grad D(x)|^2 (reg phases),
        from one forward pass."""
        with_loss, with_r1 = phase in ('Dmain', 'Dboth'), phase in ('Dreg', 'Dboth')
        label = {'Dmain': 'Dreal', 'Dreg': 'Dr1', 'Dboth': 'Dreal_Dr1'}[phase]
        with torch.autograd.profiler.record_function(label + '_forward'):
            reals = real_img.detach().requires_grad_(with_r1)
            real_logits = self.run_D(reals, real_c, blur_sigma=blur_sigma)
            _report_logits('real', real_logits)
            total = 0
            if with_loss:
                total = torch.nn.functional.softplus(-real_logits)
                training_stats.report('Loss/D/loss', fake_loss + total)
            if with_r1:
                penalty = training_stats.report('Loss/r1_penalty', r1_penalty(real_logits, reals))
                total = total + training_stats.report('Loss/D/reg', penalty * (self.r1_gamma / 2))
        _backward(label, total, gain)

    def state_dict(self):
        """Running state that an exact resume must restore."""
        return dict(pl_mean=self.pl_mean.detach().cpu().clone())

    def load_state_dict(self, state):
        self.pl_mean.copy_(state['pl_mean'].to(self.pl_mean.device))

# ----------------------------------------------------------------------------


class WGANGPLoss(GeneratorDiscriminatorRunner):
    """Wasserstein loss with a gradient penalty on random interpolates of reals and fakes
    (Gulrajani et al. 2017), plus the small drift term of Karras et al. 2018 keeping D's output near 0."""

    def __init__(self,
        device,                         # Device of the networks.
        G,                              # Generator (mapping + synthesis).
        D,                              # Discriminator (the critic).
        augment_pipe        = None,     # Augmentation applied to every image D sees; None = disable.
        gp_weight           = 10,       # Weight of the gradient penalty (lambda).
        gp_target           = 1,        # Target gradient norm.
        drift_weight        = 0.001,    # Weight of D(real)^2.
        style_mixing_prob   = 0,        # Probability of mixing the styles of two latents in a batch.
        blur_init_sigma     = 0,        # Initial sigma of the blur applied to D's inputs; 0 = disable.
        blur_fade_kimg      = 0,        # Length of the linear fade-out of that blur, in kimg.
    ):
        super().__init__(device=device, G=G, D=D, augment_pipe=augment_pipe, style_mixing_prob=style_mixing_prob,
                         blur_init_sigma=blur_init_sigma, blur_fade_kimg=blur_fade_kimg)
        self.gp_weight = gp_weight
        self.gp_target = gp_target
        self.drift_weight = drift_weight

    def gradient_penalty(self, real_img, gen_img, real_c, blur_sigma):
        """(|grad D(x_hat)| - target)^2 at x_hat uniformly between a real and a fake, per sample."""
        alpha = torch.rand([real_img.shape[0], 1, 1, 1], device=real_img.device)
        mixed_img = torch.lerp(real_img.detach(), gen_img.detach(), alpha).requires_grad_(True)
        mixed_logits = self.run_D(mixed_img, real_c, blur_sigma=blur_sigma)
        with conv2d_gradfix.no_weight_gradients():
            grads = torch.autograd.grad(outputs=[mixed_logits.sum()], inputs=[mixed_img], create_graph=True,
                                        only_inputs=True)[0]
        norms = grads.flatten(1).norm(dim=1)
        return (norms - self.gp_target).square()

    def accumulate_gradients(self, phase, real_img, real_c, gen_z, gen_c, gain, cur_nimg):
        assert phase in PHASES
        phase = {'Greg': 'none', 'Gboth': 'Gmain'}.get(phase, phase)  # G has no regulariser here.
        if self.gp_weight == 0:
            phase = {'Dreg': 'none', 'Dboth': 'Dmain'}.get(phase, phase)
        blur_sigma = self.blur_sigma(cur_nimg)

        if phase == 'Gmain':
            gen_img, _gen_ws = self.run_G(gen_z, gen_c)
            gen_logits = self.run_D(gen_img, gen_c, blur_sigma=blur_sigma)
            training_stats.report('Loss/scores/fake', gen_logits)
            training_stats.report('Loss/signs/fake', gen_logits.sign())
            loss_G = -gen_logits
            training_stats.report('Loss/G/loss', loss_G)
            loss_G.mean().mul(gain).backward()

        if phase in ('Dmain', 'Dreg', 'Dboth'):
            gen_img, _gen_ws = self.run_G(gen_z, gen_c, update_emas=(phase != 'Dreg'))
            loss_D = 0
            if phase in ('Dmain', 'Dboth'):
                gen_logits = self.run_D(gen_img.detach(), gen_c, blur_sigma=blur_sigma, update_emas=True)
                real_logits = self.run_D(real_img.detach(), real_c, blur_sigma=blur_sigma)
                training_stats.report('Loss/scores/fake', gen_logits)
                training_stats.report('Loss/signs/fake', gen_logits.sign())
                training_stats.report('Loss/scores/real', real_logits)
                training_stats.report('Loss/signs/real', real_logits.sign())
                loss_D = gen_logits - real_logits + real_logits.square() * self.drift_weight
                training_stats.report('Loss/D/loss', loss_D)
            loss_gp = 0
            if phase in ('Dreg', 'Dboth'):
                penalty = self.gradient_penalty(real_img, gen_img, real_c, blur_sigma)
                loss_gp = penalty * self.gp_weight
                training_stats.report('Loss/gp_penalty', penalty)
                training_stats.report('Loss/D/reg', loss_gp)
            (loss_D + loss_gp).mean().mul(gain).backward()

    def state_dict(self):
        return dict()

    def load_state_dict(self, state):
        del state  # Nothing to restore.

# ----------------------------------------------------------------------------


class StyleGANTLoss(GeneratorDiscriminatorRunner):
    """StyleGAN-T's loss: hinge loss on D's per-token logits, -D(G(z)) for G, optional CLIP guidance, and blur of
    D's inputs fading out. Labels are caption strings (or text embeddings), encoded by G's text encoder."""

    def __init__(self,
        device,                         # Device of the networks.
        G,                              # Generator (networks_stylegan_t).
        D,                              # Discriminator (networks_stylegan_t).
        augment_pipe        = None,     # Augmentation before D (D applies DiffAugment itself); None = none.
        blur_init_sigma     = 32,       # Initial sigma of the blur applied to D's inputs; 0 = disable.
        blur_fade_kimg      = 1000,     # Length of the linear fade-out of that blur, in kimg.
        clip_weight         = 0,        # Weight of CLIP guidance; 0 = disable.
        clip_model          = None,     # CLIP of the guidance (see training/encoders.py); None = the default.
        clip                = None,     # Its weights; None = the default.
    ):
        super().__init__(device=device, G=G, D=D, augment_pipe=augment_pipe, blur_init_sigma=blur_init_sigma,
                         blur_fade_kimg=blur_fade_kimg)
        self.clip_weight = clip_weight
        self.guide = None
        if clip_weight > 0:
            from training import encoders
            self.guide = encoders.CLIPGuide(clip_model=clip_model, clip=clip, device=device)

    def embed(self, labels):
        """Text embeddings for a batch of labels: captions are encoded, through the graph when G's text tower is
        being tuned (its parameters then require gradients); tensors pass through."""
        if isinstance(labels, (list, tuple)):
            from training import encoders
            tuned = any(param.requires_grad for param in self.G.text_encoder.parameters())
            return encoders.encode_prompts(self.G, labels, device=self.device, differentiable=tuned)
        return labels

    def accumulate_gradients(self, phase, real_img, real_c, gen_z, gen_c, gain, cur_nimg):
        assert phase in PHASES
        phase = {'Gboth': 'Gmain', 'Dboth': 'Dmain'}.get(phase, phase)  # No regularisation phases.
        blur_sigma = self.blur_sigma(cur_nimg)
        if phase == 'Gmain':
            with torch.autograd.profiler.record_function('Gmain_forward'):
                gen_text = self.embed(gen_c)
                fake_img, _ws = self.run_G(gen_z, gen_text)
                fake_logits = self.run_D(fake_img, gen_text, blur_sigma=blur_sigma)
                _report_logits('fake', fake_logits)
                loss = training_stats.report('Loss/G/loss', -fake_logits.mean(dim=1))
                if self.guide is not None:
                    if not isinstance(gen_c, (list, tuple)):
                        raise ValueError('CLIP guidance needs caption strings as labels')
                    distance = training_stats.report('Loss/G/clip', self.guide.distance(fake_img, gen_c))
                    loss = loss + distance * self.clip_weight
            _backward('Gmain', loss, gain)
        if phase == 'Dmain':
            with torch.autograd.profiler.record_function('Dgen_forward'):
                gen_text = self.embed(gen_c)
                fake_img, _ws = self.run_G(gen_z, gen_text, update_emas=True)
                fake_logits = self.run_D(fake_img.detach(), gen_text, blur_sigma=blur_sigma, update_emas=True)
                _report_logits('fake', fake_logits)
                fake_loss = torch.relu(1 + fake_logits).mean(dim=1)
            _backward('Dgen', fake_loss, gain)
            with torch.autograd.profiler.record_function('Dreal_forward'):
                real_logits = self.run_D(real_img.detach(), self.embed(real_c), blur_sigma=blur_sigma)
                _report_logits('real', real_logits)
                real_loss = torch.relu(1 - real_logits).mean(dim=1)
                training_stats.report('Loss/D/loss', fake_loss.detach() + real_loss)
            _backward('Dreal', real_loss, gain)

    def state_dict(self):
        return dict()

    def load_state_dict(self, state):
        del state  # Nothing to restore.

# ----------------------------------------------------------------------------
