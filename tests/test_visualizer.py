"""End-to-end tests of visualizer.py: the real window under Xvfb (Mesa's software OpenGL), driven by
command files (--script), captured to PNG and compared with gen_images.py and the renderer."""

import importlib
import json
import os
import pickle
import shutil
import subprocess

import numpy as np
import PIL.Image
import pytest
import torch

from helpers import run_python
from tool_networks import fixture_generator, save_network_pkl, tiny_generator

GUI_MODULES = ('imgui_bundle', 'glfw', 'OpenGL')
XVFB_ARGS = ['xvfb-run', '--auto-servernum', '--server-args=-screen 0 1280x1024x24']
WINDOW_SIZE = '1000x700'


def _gui_modules_missing():
    missing = []
    for name in GUI_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:  # Not installed, or (glfw) its shared library is not found.
            missing.append(name)
    return missing


def _skip_without_gui():
    missing = _gui_modules_missing()
    if missing:
        pytest.skip(f'GUI libraries missing ({", ".join(missing)}): pip install -r requirements.txt')
    if shutil.which('xvfb-run') is None:
        pytest.skip('xvfb-run missing: apt-get install xvfb libgl1-mesa-dri (as .ci/run does)')


@pytest.fixture(scope='module')
def nets(tmp_path_factory):
    root = tmp_path_factory.mktemp('visualizer')
    sg2, _ = fixture_generator('sg2-32-uncond')
    sg3, _ = fixture_generator('sg3t-32-uncond')
    with open(root / 'not_a_network.pkl', 'wb') as f:
        pickle.dump({'weights': [1, 2, 3]}, f)
    return dict(root=root, sg2=save_network_pkl(sg2, root / 'sg2.pkl'), sg3=save_network_pkl(sg3, root / 'sg3.pkl'),
                cond=save_network_pkl(tiny_generator(c_dim=3), root / 'cond.pkl'))


def _visualize(tmp_path, script, *pkls, xvfb=True, extra_args=(), timeout=600):
    """Runs visualizer.py on a command file; returns the CompletedProcess."""
    script_path = tmp_path / 'script.txt'
    script_path.write_text(script)
    args = ['visualizer.py', f'--script={script_path}', f'--capture-dir={tmp_path}', f'--window-size={WINDOW_SIZE}',
            *extra_args, *[str(p) for p in pkls]]
    if not xvfb:
        return run_python(args, timeout=timeout)
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env.pop('WAYLAND_DISPLAY', None)
    return subprocess.run(XVFB_ARGS + ['python3'] + args, cwd=env['PYTHONPATH'], env=env, capture_output=True,
                          text=True, timeout=timeout)


def _check_ok(result):
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'Traceback' not in result.stderr, result.stderr


def _png(path):
    return np.array(PIL.Image.open(path))


def _state(path):
    with open(path) as f:
        return json.load(f)


def _view_pixels(window_png, state):
    """The image as shown in the window capture, one screen pixel per image pixel (the centre of each)."""
    view = state['view']
    zoom = int(view['zoom'])
    assert zoom >= 1 and zoom == view['zoom'], view  # Small images are shown at a whole zoom factor.
    window = _png(window_png)
    assert list(window.shape[:2]) == state['framebuffer_size'][::-1]
    return window[view['y'] + zoom // 2:view['y'] + view['height']:zoom, view['x'] + zoom // 2:view['x'] + view['width']:zoom]


def _assert_close(shown, expected):
    """The window shows the image within one level per channel (exactly, in practice: nearest sampling)."""
    assert shown.shape == expected.shape
    assert np.abs(shown.astype(int) - expected.astype(int)).max() <= 1


def _gen_images(pkl, outdir, *args):
    result = run_python(['gen_images.py', f'--network={pkl}', f'--outdir={outdir}', *args])
    assert result.returncode == 0, result.stderr


def _renderer_image(**request):
    from viz.renderer import Renderer, RenderRequest
    result = Renderer(device=torch.device('cpu')).render(RenderRequest(**request))
    assert result.error is None, result.error
    return result.image


def _check_layer_and_fft(tmp_path, request):
    """layer.png / fft.png (with their .json states) show the renderer's layer and FFT views of `request`."""
    layer_state = _state(tmp_path / 'layer.json')
    assert request['layer'] in [layer['name'] for layer in layer_state['layers']]
    _assert_close(_view_pixels(tmp_path / 'layer.png', layer_state), _renderer_image(**request))
    _assert_close(_view_pixels(tmp_path / 'fft.png', _state(tmp_path / 'fft.json')), _renderer_image(**request, fft=True))
    return layer_state


def test_stylegan2_window_matches_gen_images(nets, tmp_path):
    _skip_without_gui()
    result = _visualize(tmp_path, '\n'.join([
        'set latent.seed=3 trunc.psi=0.7',
        'wait',
        'save-window seed3.png', 'save-image seed3-image.png', 'write-state seed3.json',
        'set latent.seed=4',
        'wait',
        'save-window seed4.png', 'write-state seed4.json',
        'set layer.name=b16.conv1 layer.base_channel=5',
        'wait',
        'save-window layer.png', 'write-state layer.json',
        'set layer.fft=1',
        'wait',
        'save-window fft.png', 'write-state fft.json',
        'set layer.stop_at_layer=1',
        'wait',
        'save-window stopped.png', 'write-state stopped.json',
        'set layer.name= layer.fft=0 layer.stop_at_layer=0',
        'drag 150 0',
        'wait',
        'write-state dragged.json',
        'quit',
    ]), nets['sg2'])
    _check_ok(result)
    _gen_images(nets['sg2'], tmp_path / 'gen', '--seeds=3-4', '--trunc=0.7')

    seed3 = _view_pixels(tmp_path / 'seed3.png', _state(tmp_path / 'seed3.json'))
    _assert_close(seed3, _png(tmp_path / 'gen' / 'seed0003.png'))
    np.testing.assert_array_equal(_png(tmp_path / 'seed3-image.png'), _png(tmp_path / 'gen' / 'seed0003.png'))
    seed4 = _view_pixels(tmp_path / 'seed4.png', _state(tmp_path / 'seed4.json'))
    _assert_close(seed4, _png(tmp_path / 'gen' / 'seed0004.png'))
    assert np.abs(seed3.astype(int) - seed4.astype(int)).mean() > 5

    layer_state = _check_layer_and_fft(tmp_path, dict(pkl=nets['sg2'], seed=4, psi=0.7, layer='b16.conv1', base_channel=5))
    assert layer_state['image_shape'] == [16, 16, 3] and layer_state['channels'] == [5, 3, 64]
    stopped = _state(tmp_path / 'stopped.json')  # Same view; the later layers stay listed (and selectable).
    assert stopped['layers'] == layer_state['layers'] and stopped['shown_request']['stop_at_layer']
    np.testing.assert_array_equal(_view_pixels(tmp_path / 'stopped.png', stopped),
                                  _view_pixels(tmp_path / 'fft.png', _state(tmp_path / 'fft.json')))

    dragged = _state(tmp_path / 'dragged.json')  # 150 pixels to the right: 1.5 seeds on.
    assert dragged['panels']['latent']['seed'] == pytest.approx(5.5) and dragged['request']['seed'] == pytest.approx(5.5)
    assert dragged['image_is_current'] and dragged['error'] is None


def test_stylegan3_equivariance_layers_and_fft(nets, tmp_path):
    _skip_without_gui()
    result = _visualize(tmp_path, '\n'.join([
        'set latent.seed=3',
        'wait', 'save-window base.png', 'write-state base.json',
        'set eq.translate_x=0.25',
        'wait', 'save-window moved.png', 'write-state moved.json',
        'set eq.untransform=1',
        'wait', 'save-window back.png', 'write-state back.json',
        'set eq.untransform=0 eq.translate_x=0 eq.animate_rotate=1 eq.rotate_speed=90',
        'frames 5', 'write-state turning.json',
        'set eq.animate_rotate=0 eq.rotate=0 layer.name=L5_52_64',
        'wait', 'save-window layer.png', 'write-state layer.json',
        'set layer.fft=1',
        'wait', 'save-window fft.png', 'write-state fft.json',
        'quit',
    ]), nets['sg3'])
    _check_ok(result)
    _gen_images(nets['sg3'], tmp_path / 'gen', '--seeds=3', '--translate=0.25,0')
    _gen_images(nets['sg3'], tmp_path / 'gen0', '--seeds=3')

    base = _view_pixels(tmp_path / 'base.png', _state(tmp_path / 'base.json'))
    _assert_close(base, _png(tmp_path / 'gen0' / 'seed0003.png'))
    moved = _view_pixels(tmp_path / 'moved.png', _state(tmp_path / 'moved.json'))
    _assert_close(moved, _png(tmp_path / 'gen' / 'seed0003.png'))
    centre = (slice(10, 22), slice(10, 22))
    moved_error = np.abs(moved.astype(int) - base.astype(int))[centre].mean()
    assert moved_error > 1  # The equivariance panel moved the image ...
    back = _view_pixels(tmp_path / 'back.png', _state(tmp_path / 'back.json'))
    assert np.abs(back.astype(int) - base.astype(int))[centre].mean() < moved_error / 20  # ... and moved it back.

    turning = _state(tmp_path / 'turning.json')
    assert turning['panels']['eq']['rotate'] != 0 and turning['request']['rotate'] == turning['panels']['eq']['rotate']

    layer_state = _check_layer_and_fft(tmp_path, dict(pkl=nets['sg3'], seed=3, layer='L5_52_64'))
    assert layer_state['image_shape'] == [52, 52, 3]


def test_errors_show_in_the_window(nets, tmp_path):
    _skip_without_gui()
    result = _visualize(tmp_path, '\n'.join([
        'set latent.class_idx=3',
        'wait', 'write-state class.json', 'save-window class.png',
        'set latent.class_idx=1',
        'wait', 'write-state class_ok.json',
        f'load {nets["root"] / "not_a_network.pkl"}',
        'wait', 'write-state not_a_network.json',
        f'load {nets["root"] / "missing.pkl"}',
        'wait', 'write-state missing.json',
        'load http://127.0.0.1:9/network.pkl',
        'wait', 'write-state url.json', 'save-window url.png',
        'quit',
    ]), nets['cond'])
    # A script whose window showed errors ends with one error line and a non-zero status.
    errors = [line for line in result.stderr.splitlines() if line.startswith('Error:')]
    assert result.returncode == 1 and 'Traceback' not in result.stderr, result.stderr[-3000:]
    assert len(errors) == 1 and 'Could not download' in errors[0], result.stderr[-3000:]
    for name, expected in (('class', 'Class 3 is out of range: this network has 3 classes (0..2)'),
                           ('not_a_network', 'not a network pickle'), ('missing', 'no such file'),
                           ('url', 'Could not download http://127.0.0.1:9/network.pkl')):
        state = _state(tmp_path / f'{name}.json')
        assert state['image_is_current'] and expected in state['error'], state['error']
        assert state['image_shape'] is None
        assert f'error: {state["error"]}' in result.stderr  # Also logged, once.
    assert _state(tmp_path / 'class_ok.json')['error'] is None

    # The message is drawn over the view: bright text pixels on the dark background, left of nothing else.
    state = _state(tmp_path / 'url.json')
    window = _png(tmp_path / 'url.png')
    view = window[:, state['framebuffer_size'][0] // 2:]
    assert (view.max(axis=2) > 200).sum() > 500


def test_creps_scale_panel(tmp_path):
    _skip_without_gui()
    pytest.importorskip('training.networks_creps')
    from creps_networks import tiny_generator as tiny_creps
    pkl = save_network_pkl(tiny_creps(img_resolution=16), tmp_path / 'creps.pkl')
    result = _visualize(tmp_path, '\n'.join([
        'set latent.seed=2', 'wait', 'write-state native.json',
        'set scale.scale=2', 'wait', 'save-window double.png', 'write-state double.json',
        'quit',
    ]), pkl)
    _check_ok(result)
    native, double = _state(tmp_path / 'native.json'), _state(tmp_path / 'double.json')
    assert 'scale' in native['visible_panels'] and native['network']['is_creps']
    assert native['image_shape'] == [16, 16, 3] and double['image_shape'] == [32, 32, 3]
    _assert_close(_view_pixels(tmp_path / 'double.png', double), _renderer_image(pkl=pkl, seed=2, scale=2))


def test_scale_panel_hidden_for_other_networks(nets, tmp_path):
    _skip_without_gui()
    result = _visualize(tmp_path, 'wait\nwrite-state s.json\nquit', nets['sg2'])
    _check_ok(result)
    state = _state(tmp_path / 's.json')
    assert 'scale' not in state['visible_panels'] and 'eq' in state['visible_panels']
    assert state['request']['scale'] == 1 and state['request']['translate'] == [0, 0]


def test_text_network_prompt_in_the_latent_panel(tmp_path_factory, tmp_path):
    """A text-to-image network shows the image of empty text with a note until a prompt is typed; then the
    image of gen_images.py --prompt."""
    _skip_without_gui()
    import stylegan_t_networks
    pkl = stylegan_t_networks.text_network(tmp_path_factory)
    result = _visualize(tmp_path, '\n'.join([
        'wait', 'write-state empty.json',
        "set latent.seed=3 trunc.psi=0.7 latent.prompt='a red bicycle'",
        'wait', 'save-window prompt.png', 'save-image prompt-image.png', 'write-state prompt.json',
        'quit',
    ]), pkl)
    _check_ok(result)
    empty = _state(tmp_path / 'empty.json')
    assert empty['error'] is None and any('type a prompt' in note for note in empty['notes'])
    assert empty['network']['kind'] == 'StyleGAN-T' and empty['network']['has_text_encoder']
    state = _state(tmp_path / 'prompt.json')
    assert state['shown_request']['prompt'] == 'a red bicycle' and state['image_is_current'] and not state['notes']

    _gen_images(pkl, tmp_path / 'gen', '--seeds=3', '--trunc=0.7', '--prompt=a red bicycle')
    expected = _png(tmp_path / 'gen' / 'seed0003.png')
    np.testing.assert_array_equal(_png(tmp_path / 'prompt-image.png'), expected)
    _assert_close(_view_pixels(tmp_path / 'prompt.png', state), expected)


@pytest.mark.parametrize('case', ['bad_script', 'no_display'])
def test_startup_errors_are_one_line(nets, tmp_path, case):
    if _gui_modules_missing():
        pytest.skip('needs the GUI libraries (pip install -r requirements.txt)')
    script, expected = {
        'bad_script': ('wait\nset latent.zoom=2\n', "line 2: panel latent has no field 'zoom'"),
        'no_display': ('quit\n', 'xvfb-run'),
    }[case]
    env = {'DISPLAY': '', 'WAYLAND_DISPLAY': ''} if case == 'no_display' else None
    script_path = tmp_path / 'script.txt'
    script_path.write_text(script)
    result = run_python(['visualizer.py', f'--script={script_path}', nets['sg2']], env=env)
    assert result.returncode != 0 and 'Traceback' not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith('Error:')]
    assert len(errors) == 1 and expected in errors[0], result.stderr
