"""What the panels compute without drawing: recent list, folder listing, capture names, requests, animation."""

import os
import re

import pytest

pytest.importorskip('imgui_bundle', reason='the panels need imgui-bundle (pip install -r requirements.txt)')

import gen_images  # noqa: E402
from viz import app as viz_app  # noqa: E402
from viz.capture_widget import next_capture_path  # noqa: E402
from viz.equivariance_widget import EquivarianceWidget  # noqa: E402
from viz.latent_widget import LatentWidget  # noqa: E402
from viz.pickle_widget import MAX_RECENT, PRETRAINED, add_recent, list_folder  # noqa: E402
from viz.renderer import NetworkInfo  # noqa: E402
from viz.stylemix_widget import StyleMixWidget  # noqa: E402


class StandInViz:
    def __init__(self, network=None):
        self.network = self.current_network = network


def _network(**overrides):
    fields = dict(pkl='x.pkl', kind='StyleGAN3', img_resolution=32, img_channels=3, z_dim=8, c_dim=0, num_ws=16,
                  has_input_transform=True, has_noise=False, has_fp16_layers=False, is_creps=False, device='cpu')
    fields.update(overrides)
    return NetworkInfo(**fields)


def test_recent_list():
    recent = add_recent([], 'a.pkl')
    recent = add_recent(recent, 'b.pkl')
    assert add_recent(recent, 'a.pkl') == ['a.pkl', 'b.pkl']
    long = [f'{i}.pkl' for i in range(MAX_RECENT)]
    assert add_recent(long, 'new.pkl') == ['new.pkl'] + long[:-1]


def test_pretrained_list_names_the_published_pickles():
    """As in the official visualizer: the StyleGAN3 (T and R) and StyleGAN2 pickles on NGC, each once."""
    assert len(PRETRAINED) == len(set(PRETRAINED)) == 12 + 15
    for url in PRETRAINED:
        assert url.startswith('https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan')
        assert re.fullmatch(r'stylegan(3-[rt]|2)-[a-z0-9]+-\d+x\d+\.pkl', url.rsplit('/', 1)[1]), url
    assert sum('/stylegan3/versions/1/files/stylegan3-t-' in url for url in PRETRAINED) == 6
    assert PRETRAINED[0].endswith('/stylegan3/versions/1/files/stylegan3-r-afhqv2-512x512.pkl')


def test_folder_listing(tmp_path):
    (tmp_path / 'runs').mkdir()
    (tmp_path / '.hidden').mkdir()
    for name in ('b.pkl', 'A.PKL', 'notes.txt'):
        (tmp_path / name).write_text('')
    assert list_folder(tmp_path) == (['runs'], ['A.PKL', 'b.pkl'])


def test_capture_names_count_up(tmp_path):
    assert next_capture_path(str(tmp_path / 'new'), 'image') == os.path.join(str(tmp_path / 'new'), '00000-image.png')
    (tmp_path / '00007-window.png').write_text('')
    (tmp_path / 'other.png').write_text('')
    assert next_capture_path(str(tmp_path), 'image') == os.path.join(str(tmp_path), '00008-image.png')


def test_latent_drag_animation_and_bounds():
    latent = LatentWidget(StandInViz())
    latent.seed = 3.0
    latent.drag(150, 40)
    assert latent.seed == pytest.approx(4.5)
    latent.drag(-10000, 0)
    assert latent.seed == 0
    latent.animate, latent.speed = True, 0.5
    latent.update(2.0)
    assert latent.seed == pytest.approx(1.0)
    latent.set_seed(gen_images.MAX_SEED + 5)
    assert latent.seed == gen_images.MAX_SEED
    assert latent.request_fields() == dict(seed=float(gen_images.MAX_SEED), class_idx=0)


def test_style_mixing_defaults_to_the_fine_half():
    viz = StandInViz()
    mix = StyleMixWidget(viz)
    mix.enabled = True
    assert mix.request_fields() == {}  # No network yet.
    viz.network = _network(num_ws=16)
    mix.update(0.0)
    assert mix.request_fields() == dict(mix_seed=1, mix_range=(8, 16))


def test_equivariance_only_on_networks_with_an_input_transform():
    viz = StandInViz(_network())
    eq = EquivarianceWidget(viz)
    eq.animate_translate, eq.translate_speed = True, 0.1
    eq.animate_rotate, eq.rotate_speed = True, 100
    eq.update(2.0)
    assert eq.request_fields() == dict(translate=(pytest.approx(0.2), 0.0), rotate=-160.0, untransform=False)
    viz.current_network = None  # A new pickle, not rendered yet: no transform until it is known to take one.
    assert eq.request_fields() == {}
    viz.network = viz.current_network = _network(kind='StyleGAN2', has_input_transform=False)
    eq.update(2.0)
    assert eq.request_fields() == {} and eq.translate_x == pytest.approx(0.2)


def test_script_fields_cover_every_panel():
    fields = viz_app.script_fields()
    assert set(fields) == {cls.panel_name for cls in viz_app.WIDGET_CLASSES}
    assert fields['latent']['seed'] is float and fields['layer']['fft'] is bool
