"""Text prompts in the visualizer without a window: the renderer's `prompt` argument (encoded once per prompt,
ignored by networks without a text encoder) and the Latent panel's share of the request."""

import numpy as np
import pytest
import torch

import gen_images
import stylegan_t_networks
from tool_networks import images_to_uint8, save_network_pkl, tiny_generator
from training import encoders
from viz.renderer import Renderer, RenderRequest

PROMPT = 'a red bicycle'


@pytest.fixture(scope='module')
def nets(tmp_path_factory):
    text_pkl = stylegan_t_networks.text_network(tmp_path_factory)
    root = tmp_path_factory.mktemp('prompts_renderer')
    return dict(text_pkl=text_pkl, G=stylegan_t_networks.load_generator(text_pkl),
                sg2_pkl=save_network_pkl(tiny_generator(), root / 'sg2.pkl'))


@pytest.fixture
def renderer():
    return Renderer(device=torch.device('cpu'))


@pytest.fixture
def encoder_calls(monkeypatch):
    """The prompts the renderer encodes, in order."""
    calls = []
    encode = encoders.encode_prompts

    def counting_encode(G, prompts, **kwargs):
        calls.extend(prompts)
        return encode(G, prompts, **kwargs)
    monkeypatch.setattr(encoders, 'encode_prompts', counting_encode)
    return calls


def _render_ok(renderer, **kwargs):
    result = renderer.render(RenderRequest(**kwargs))
    assert result.error is None, result.error
    return result


def _expected(G, seed, prompt, psi=1.0):
    z = torch.from_numpy(gen_images.seed_to_z(seed, G.z_dim))
    with torch.no_grad():
        img = G(z, encoders.encode_prompts(G, [prompt]), truncation_psi=psi, noise_mode='const', force_fp32=True)
    return images_to_uint8(img)[0]


def test_prompt_image_is_the_generators(nets, renderer):
    G = nets['G']
    result = _render_ok(renderer, pkl=nets['text_pkl'], seed=3, psi=0.7, prompt=PROMPT)
    np.testing.assert_array_equal(result.image, _expected(G, 3, PROMPT, psi=0.7))
    assert result.network.kind == 'StyleGAN-T' and result.network.has_text_encoder and not result.notes
    other = _render_ok(renderer, pkl=nets['text_pkl'], seed=3, psi=0.7, prompt='a blue house').image
    assert not np.array_equal(other, result.image)
    # The class of a request means nothing to a text network.
    np.testing.assert_array_equal(_render_ok(renderer, pkl=nets['text_pkl'], seed=3, psi=0.7, prompt=PROMPT,
                                             class_idx=9).image, result.image)


def test_the_last_prompt_is_encoded_once(nets, renderer, encoder_calls):
    pkl = nets['text_pkl']
    for seed in (1, 2, 2.5):
        _render_ok(renderer, pkl=pkl, seed=seed, prompt=PROMPT)
    _render_ok(renderer, pkl=pkl, seed=1, prompt=PROMPT, layer='b16.torgb', fft=True)
    assert encoder_calls == [PROMPT]
    _render_ok(renderer, pkl=pkl, seed=1, prompt='a blue house')
    _render_ok(renderer, pkl=pkl, seed=1, prompt=PROMPT)
    assert encoder_calls == [PROMPT, 'a blue house', PROMPT]  # Only the last one is kept.


def test_empty_prompt_shows_the_empty_texts_image_with_a_note(nets, renderer):
    result = _render_ok(renderer, pkl=nets['text_pkl'], seed=4)
    np.testing.assert_array_equal(result.image, _expected(nets['G'], 4, ''))
    assert len(result.notes) == 1 and 'type a prompt in the Latent panel' in result.notes[0]


def test_networks_without_a_text_encoder_ignore_the_prompt(nets, renderer, encoder_calls):
    plain = _render_ok(renderer, pkl=nets['sg2_pkl'], seed=2)
    prompted = _render_ok(renderer, pkl=nets['sg2_pkl'], seed=2, prompt=PROMPT)
    np.testing.assert_array_equal(prompted.image, plain.image)
    assert not prompted.network.has_text_encoder and not prompted.notes and encoder_calls == []


def test_encoder_problems_are_one_line(nets, renderer, monkeypatch):
    def missing_open_clip(*_args, **_kwargs):
        raise encoders.EncoderError('StyleGAN-T needs the open_clip package: pip install open-clip-torch')
    monkeypatch.setattr(encoders, 'encode_prompts', missing_open_clip)
    result = renderer.render(RenderRequest(pkl=nets['text_pkl'], prompt=PROMPT))
    assert result.image is None and 'pip install open-clip-torch' in result.error and '\n' not in result.error

# ----------------------------------------------------------------------------
# The panels (no window: what they compute).


def test_latent_panel_sends_the_prompt_once_typed():
    pytest.importorskip('imgui_bundle', reason='the panels need imgui-bundle (pip install -r requirements.txt)')
    from viz import app as viz_app
    from viz.latent_widget import LatentWidget

    class StandInViz:
        network = current_network = None

    latent = LatentWidget(StandInViz())
    assert latent.request_fields() == dict(seed=0.0, class_idx=0)  # The request's default: no prompt.
    latent.prompt = PROMPT
    assert latent.request_fields() == dict(seed=0.0, class_idx=0, prompt=PROMPT)
    assert RenderRequest(**latent.request_fields()).prompt == PROMPT
    assert viz_app.script_fields()['latent']['prompt'] is str


def test_pickle_panel_summary_names_prompts_not_classes(nets, renderer):
    pytest.importorskip('imgui_bundle', reason='the panels need imgui-bundle (pip install -r requirements.txt)')
    from viz.pickle_widget import conditioning_summary
    text = _render_ok(renderer, pkl=nets['text_pkl'], prompt=PROMPT).network
    assert conditioning_summary(text) == ', text prompts'
    assert conditioning_summary(_render_ok(renderer, pkl=nets['sg2_pkl']).network) == ''
