"""StyleGAN-T networks: shapes, the frozen encoders against open_clip and timm, truncation, the losses, and
pickles that load without this checkout's network source."""

import math
import pickle

import numpy as np
import pytest
import torch

import dnnlib
from helpers import run_python

pytest.importorskip('open_clip')
pytest.importorskip('timm')

import stylegan_t_standins  # noqa: E402
from training import encoders  # noqa: E402
from training import loss as loss_module  # noqa: E402
from training import networks_stylegan_t as networks  # noqa: E402


@pytest.fixture(scope='module')
def standins(tmp_path_factory):
    paths = stylegan_t_standins.build(tmp_path_factory.mktemp('standins'))
    clip_net = encoders.load_clip(paths['clip_model'], paths['clip'])
    vit = encoders.load_dino(paths['dino_model'], paths['dino'])
    return dnnlib.EasyDict(paths=paths, clip=clip_net, vit=vit, text_kwargs=encoders.text_encoder_kwargs(clip_net),
               backbone_kwargs=encoders.backbone_kwargs(vit))


def make_networks(standins, resolution=32, text=True, seed=0):
    torch.manual_seed(seed)
    c_dim = standins.text_kwargs['embed_dim'] if text else 0
    G = networks.Generator(z_dim=64, c_dim=c_dim, img_resolution=resolution, img_channels=3,
                           text_encoder_kwargs=standins.text_kwargs if text else None, channel_base=512,
                           channel_max=64, res_blocks=1)
    D = networks.Discriminator(c_dim=c_dim, img_resolution=resolution, img_channels=3,
                               backbone_kwargs=standins.backbone_kwargs)
    encoders.fill_pretrained(G, D, standins.paths)
    return G, D


PROMPTS = ['a red disc', 'a blue square on a grey background', '']


def test_text_encoder_equals_open_clip(standins):
    G, _D = make_networks(standins)
    ours = encoders.encode_prompts(G, PROMPTS)
    import open_clip
    tokens = open_clip.get_tokenizer('ViT-L-14')(PROMPTS)
    reference = torch.nn.functional.normalize(standins.clip.encode_text(tokens), dim=-1)
    assert ours.shape == (3, standins.text_kwargs['embed_dim']) and ours.dtype == torch.float32
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=0)


def test_backbone_equals_timm(standins):
    _G, D = make_networks(standins)
    x = torch.randn([2, 3, 32, 32], generator=torch.Generator().manual_seed(1))
    ours = D.backbone(x)
    hooks = standins.backbone_kwargs['hooks']
    assert hooks == [2, 5, 8, 11]
    reference = standins.vit.forward_intermediates(x, indices=hooks, norm=False, output_fmt='NLC',
                                                   intermediates_only=True, return_prefix_tokens=True)
    assert len(ours) == len(hooks) + 1
    for mine, (patches, prefix) in zip(ours[1:], reference):
        torch.testing.assert_close(mine, (patches + prefix).transpose(1, 2), atol=1e-5, rtol=0)
    tokens = standins.vit.patch_embed(x)
    tokens = standins.vit._pos_embed(tokens)
    torch.testing.assert_close(ours[0], (tokens[:, 1:] + tokens[:, :1]).transpose(1, 2), atol=1e-6, rtol=0)


def test_position_embeddings_resample_for_another_grid(standins):
    _G, D = make_networks(standins)
    same = D.backbone.position_embeddings(4, 4)
    assert same is D.backbone.pos_embed
    larger = D.backbone.position_embeddings(6, 6)
    assert larger.shape == (1, 37, D.backbone.width)
    torch.testing.assert_close(larger[:, :1], D.backbone.pos_embed[:, :1])


@pytest.mark.parametrize('resolution', [16, 32, 64])
def test_shapes_and_dtypes(standins, resolution):
    G, D = make_networks(standins, resolution=resolution)
    z = torch.randn([4, 64])
    c = encoders.encode_prompts(G, PROMPTS + ['x'])
    img = G(z, c)
    assert img.shape == (4, 3, resolution, resolution) and img.dtype == torch.float32
    assert G.synthesis.block_resolutions == [2 ** i for i in range(3, int(math.log2(resolution)) + 1)]
    logits = D.train()(img, c)
    tokens = (standins.backbone_kwargs['img_size'] // standins.backbone_kwargs['patch_size']) ** 2
    assert logits.shape == (4, tokens * 5) and logits.dtype == torch.float32
    ws = G.mapping(z, c)
    assert ws.shape == (4, G.num_ws, 64 + c.shape[1])


def test_unconditional_generator_has_no_text_encoder(standins):
    G, D = make_networks(standins, text=False)
    assert G.text_encoder is None and G.c_dim == 0 and G.w_dim == 64
    img = G(torch.randn([2, 64]), None)
    assert D(img, None).shape[0] == 2
    with pytest.raises(encoders.EncoderError, match='no text encoder'):
        encoders.encode_prompts(G, ['a cat'])


def test_residual_layers_start_with_small_layer_scale(standins):
    G, _D = make_networks(standins)
    residual = [layer for layer in G.modules() if isinstance(layer, networks.SynthesisLayer) and layer.residual]
    assert len(residual) == len(G.synthesis.block_resolutions)
    for layer in residual:
        assert torch.all(layer.gamma == np.float32(1e-5))
        assert layer.noise_strength.item() == 0


def test_truncation_moves_only_the_latent_part(standins):
    G, _D = make_networks(standins)
    G.mapping.w_avg.copy_(torch.randn([64]))
    z = torch.randn([3, 64])
    c = encoders.encode_prompts(G, PROMPTS)
    full = G.mapping(z, c)
    half = G.mapping(z, c, truncation_psi=0.5)
    torch.testing.assert_close(half[:, :, 64:], full[:, :, 64:], atol=0, rtol=0)
    torch.testing.assert_close(half[:, :, :64], G.mapping.w_avg.lerp(full[:, :, :64], 0.5))
    cut = G.mapping(z, c, truncation_psi=0.0, truncation_cutoff=2)
    assert torch.equal(cut[:, :2, :64], G.mapping.w_avg.expand(3, 2, 64))
    assert torch.equal(cut[:, 2:], full[:, 2:])


def test_discriminator_backbone_is_frozen(standins):
    G, D = make_networks(standins)
    D.train().requires_grad_(True)
    assert not D.backbone.training and all(head.training for head in D.heads)
    trainable = {name for name, _ in D.named_parameters()}
    assert trainable and not any(name.startswith('backbone.') for name in trainable)
    before = {name: tensor.clone() for name, tensor in D.backbone.named_buffers()}
    optimizer = torch.optim.Adam(D.parameters(), lr=0.1)
    img = G(torch.randn([4, 64]), encoders.encode_prompts(G, PROMPTS + ['y'])).detach().requires_grad_(True)
    D(img, encoders.encode_prompts(G, PROMPTS + ['y'])).sum().backward()
    optimizer.step()
    assert img.grad is not None and img.grad.abs().sum() > 0  # Gradients pass through the backbone to the image...
    for name, tensor in D.backbone.named_buffers():                # ... but never change it.
        assert tensor.grad is None and torch.equal(tensor, before[name]), name


def test_hinge_loss_against_hand_computed_gradients():
    """G's images and D's logits are linear in one parameter each, so the gradients are known in closed form."""
    class TinyG(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.z_dim, self.c_dim = 2, 0
            self.g = torch.nn.Parameter(torch.tensor(0.5))
            self.mapping = lambda z, c, update_emas=False: z.unsqueeze(1)
            self.synthesis = lambda ws, update_emas=False: self.g * ws.sum(dim=[1, 2]).reshape(-1, 1, 1, 1).expand(-1, 3, 4, 4)

    class TinyD(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.d = torch.nn.Parameter(torch.tensor(2.0))

        def forward(self, img, c, update_emas=False):
            return self.d * img.mean(dim=[1, 2, 3]).unsqueeze(1).repeat(1, 3)  # Three identical tokens.

    G, D = TinyG(), TinyD()
    loss = loss_module.StyleGANTLoss(device='cpu', G=G, D=D, blur_init_sigma=0)
    z = torch.tensor([[0.3, 0.1], [-0.2, -0.1]])         # Fakes of mean 0.5 * 0.4 = 0.2 and 0.5 * -0.3 = -0.15.
    reals = torch.stack([torch.full([3, 4, 4], 0.6), torch.full([3, 4, 4], -0.3)])
    c = torch.zeros([2, 0])

    D.requires_grad_(True)
    loss.accumulate_gradients('Dboth', reals, c, z, c, gain=1, cur_nimg=0)
    fake_means, real_means = np.array([0.2, -0.15]), np.array([0.6, -0.3])
    # D: mean over samples of relu(1 + d f) + relu(1 - d r), with d = 2; a relu whose input is negative gives 0.
    d = 2.0
    expected = np.mean(fake_means * (1 + d * fake_means > 0)) + np.mean(-real_means * (1 - d * real_means > 0))
    assert expected == pytest.approx(0.025 + 0.15)  # The real of mean 0.6 is past the hinge.
    assert float(D.d.grad) == pytest.approx(expected, abs=1e-6)

    D.requires_grad_(False)
    G.requires_grad_(True)
    loss.accumulate_gradients('Gboth', reals, c, z, c, gain=1, cur_nimg=0)
    # G: mean of -d * g * sum(z): d/dg = -d * mean(sum(z)) = -2 * 0.05.
    assert float(G.g.grad) == pytest.approx(-2 * np.mean([0.4, -0.3]), abs=1e-6)


def test_spherical_distance_against_hand_values():
    x = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [2.0, 0.0]])
    y = torch.tensor([[0.0, 3.0], [1.0, 0.0], [0.5, math.sqrt(3) / 2], [-1.0, 0.0]])
    expected = torch.tensor([(math.pi / 2) ** 2, 0.0, (math.pi / 3) ** 2, math.pi ** 2])
    torch.testing.assert_close(encoders.spherical_distance_squared(x, y), expected, atol=5e-3, rtol=0)


def test_clip_guidance_against_open_clip(standins):
    guide = encoders.CLIPGuide(clip_model=standins.paths['clip_model'], clip=standins.paths['clip'])
    img = torch.rand([2, 3, 32, 32]) * 2 - 1  # Smaller than the 64-pixel crop: used whole.
    prompts = ['a red disc', 'a blue square']
    distance = guide.distance(img, prompts)
    size, mean, std = encoders.image_preprocessing(standins.clip)
    x = torch.nn.functional.interpolate((img + 1) / 2, size=(size, size), mode='area')
    x = (x - torch.tensor(mean).reshape(1, 3, 1, 1)) / torch.tensor(std).reshape(1, 3, 1, 1)
    import open_clip
    image_embedding = torch.nn.functional.normalize(standins.clip.encode_image(x), dim=-1)
    text_embedding = torch.nn.functional.normalize(standins.clip.encode_text(open_clip.tokenize(prompts)), dim=-1)
    angle = torch.arccos((image_embedding * text_embedding).sum(dim=1))
    torch.testing.assert_close(distance, angle.square(), atol=1e-4, rtol=0)


def test_clip_guidance_enters_the_generator_loss(standins):
    G, D = make_networks(standins)
    loss = loss_module.StyleGANTLoss(device='cpu', G=G, D=D, blur_init_sigma=0, clip_weight=5,
                                     clip_model=standins.paths['clip_model'], clip=standins.paths['clip'])
    z = torch.randn([2, 64])
    G.requires_grad_(True)
    from torch_utils import training_stats
    collector = training_stats.Collector(regex='Loss/G/.*')
    loss.accumulate_gradients('Gboth', None, None, z, ['a red disc', 'a blue square'], gain=1, cur_nimg=0)
    collector.update()
    assert 0 < collector.mean('Loss/G/clip') < math.pi ** 2
    assert G.mapping.layers[0].weight.grad is not None


def test_offline_weights_fail_with_one_line(tmp_path, monkeypatch):
    import huggingface_hub.constants
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_OFFLINE', True)  # Read at import: set it directly.
    monkeypatch.setenv('HF_HOME', str(tmp_path / 'hf'))
    with pytest.raises(encoders.EncoderError) as err:
        encoders.load_dino('vit_small_patch16_224.dino', None)
    assert '--dino=PATH' in str(err.value) and '\n' not in str(err.value)
    with pytest.raises(encoders.EncoderError, match='no such checkpoint file'):
        encoders.load_clip('ViT-L-14', str(tmp_path / 'missing.pt'))
    with pytest.raises(encoders.EncoderError, match='custom ViT'):
        json_path = tmp_path / 'vit.json'
        json_path.write_text('{"model": "vit_small_patch16_224", "kwargs": {"depth": 2}}')
        encoders.load_dino(str(json_path), None)


UNPICKLE_SCRIPT = r'''
import sys, torch
sys.modules['training.networks_stylegan_t'] = None  # The checkout's module cannot be imported: the pickle's runs.
import legacy
from training import encoders
with open(sys.argv[1], 'rb') as f:
    data = legacy.load_network_pkl(f, trust_pickle=True)
G = data['G_ema']
assert type(G).__module__.startswith('_imported_module_'), type(G).__module__
z = torch.from_numpy(__import__('numpy').random.RandomState(7).randn(1, G.z_dim)).float()
with torch.no_grad():
    img = G(z, encoders.encode_prompts(G, ['a red disc']), truncation_psi=0.8, noise_mode='const')
torch.save(img, sys.argv[2])
'''


def test_pickle_round_trip_without_the_network_source(standins, tmp_path):
    G, D = make_networks(standins)
    G.eval()
    with open(tmp_path / 'net.pkl', 'wb') as f:
        pickle.dump(dict(G=G, D=D.eval(), G_ema=G, augment_pipe=None, training_set_kwargs=None), f)
    result = run_python(['-c', UNPICKLE_SCRIPT, str(tmp_path / 'net.pkl'), str(tmp_path / 'img.pt')], fresh=True)
    assert result.returncode == 0, result.stderr
    z = torch.from_numpy(np.random.RandomState(7).randn(1, 64)).float()
    with torch.no_grad():
        expected = G(z, encoders.encode_prompts(G, ['a red disc']), truncation_psi=0.8, noise_mode='const')
    loaded = torch.load(tmp_path / "img.pt")
    assert torch.equal(loaded, expected), (loaded - expected).abs().max()

    # The safe loader (no code from the pickle) rebuilds the same networks from this checkout's classes.
    import legacy
    with open(tmp_path / 'net.pkl', 'rb') as f:
        data = legacy.load_network_pkl(f)
    assert type(data['G_ema']) is networks.Generator and type(data['D']) is networks.Discriminator
    with torch.no_grad():
        again = data['G_ema'](z, encoders.encode_prompts(data['G_ema'], ['a red disc']), truncation_psi=0.8,
                              noise_mode='const')
    assert torch.equal(again, expected)


def relative_error(a, b):
    return float((a - b).norm() / b.norm().clamp(min=1e-12))


@pytest.mark.cuda
def test_float16_blocks_and_discriminator_on_cuda(standins):
    """On CUDA the top resolutions run in float16: close to float32 and to the CPU; D and a backward pass too."""
    G, D = make_networks(standins, resolution=64)
    assert all(block.use_fp16 for block in G.synthesis.children())  # The top 4 resolutions: all of 8..64.
    z = torch.randn([4, 64])
    c = encoders.encode_prompts(G, PROMPTS + ['a green triangle'])
    with torch.no_grad():
        img_cpu = G.eval()(z, c, noise_mode='const')
        logits_cpu = D.eval()(img_cpu, c)
    G_gpu, D_gpu = G.cuda(), D.cuda()
    with torch.no_grad():
        img16 = G_gpu(z.cuda(), c.cuda(), noise_mode='const')
        img32 = G_gpu(z.cuda(), c.cuda(), noise_mode='const', force_fp32=True)
        logits_gpu = D_gpu(img32, c.cuda())
    assert img16.dtype == torch.float32 and torch.isfinite(img16).all()
    assert relative_error(img16.cpu(), img32.cpu()) < 2e-2
    assert relative_error(img32.cpu(), img_cpu) < 1e-3
    assert relative_error(logits_gpu.cpu(), logits_cpu) < 1e-3
    G_gpu.train().requires_grad_(True)
    D_gpu.train()
    D_gpu(G_gpu(z.cuda(), c.cuda()), c.cuda()).mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in G_gpu.parameters() if p.grad is not None)
