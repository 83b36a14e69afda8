"""The network modules of training/ are embedded in pickles and executed standalone when the pickle is
loaded, possibly by the official code base. Their source may therefore use only the compatibility
surface listed in docs/architecture.md ("The pickle contract"): numpy, scipy, torch, the standard library,
dnnlib, and the listed names of torch_utils.misc, torch_utils.persistence and torch_utils.ops.*.
"""

import ast
import pathlib
import re
import sys

import pytest

TRAINING_DIR = pathlib.Path(__file__).resolve().parents[2] / 'training'

# Modules that must exist and be checked even if the discovery below had a bug.
REQUIRED_MODULES = ['networks_stylegan2.py']

THIRD_PARTY_PACKAGES = {'numpy', 'scipy', 'torch', 'dnnlib'}

# Public names of torch_utils that pickled sources may use (docs/architecture.md, "The pickle contract").
TORCH_UTILS_SURFACE = {
    'misc': {'constant', 'assert_shape', 'suppress_tracer_warnings', 'profiled_function', 'InfiniteSampler',
             'params_and_buffers', 'named_params_and_buffers', 'copy_params_and_buffers', 'ddp_sync',
             'check_ddp_consistency', 'print_module_summary'},
    'persistence': {'persistent_class', 'is_persistent', 'import_hook'},
}
OPS_SURFACE = {
    'bias_act': {'bias_act', 'activation_funcs'},
    'upfirdn2d': {'setup_filter', 'upfirdn2d', 'filter2d', 'upsample2d', 'downsample2d'},
    'filtered_lrelu': {'filtered_lrelu'},
    'conv2d_gradfix': {'conv2d', 'conv_transpose2d', 'no_weight_gradients', 'enabled'},
    'conv2d_resample': {'conv2d_resample'},
    'fma': {'fma'},
    'grid_sample_gradfix': {'grid_sample'},
}
# Names this project adds, which pickled modules may reach only as getattr(module, name, <surface name>).
OPTIONAL_SURFACE = {
    'bias_act': {'bias_act_'},
}


def _is_persisted_module(tree):
    """True if the module defines a class decorated with persistence.persistent_class."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for decorator in node.decorator_list:
                if isinstance(decorator, ast.Attribute) and decorator.attr == 'persistent_class':
                    return True
                if isinstance(decorator, ast.Name) and decorator.id == 'persistent_class':
                    return True
    return False


def _persisted_module_paths():
    paths = set(TRAINING_DIR / name for name in REQUIRED_MODULES)
    for path in TRAINING_DIR.glob('*.py'):
        if _is_persisted_module(ast.parse(path.read_text(), filename=str(path))):
            paths.add(path)
    return sorted(paths)


def surface_violations(src):
    """Lists every import or attribute use in `src` that lies outside the compatibility surface."""
    tree = ast.parse(src)
    problems = []
    local_surface = {}  # Local name -> allowed attributes (None = any).

    def allow_module(dotted, local_name, lineno):
        parts = dotted.split('.')
        if parts[0] in THIRD_PARTY_PACKAGES or parts[0] in sys.stdlib_module_names:
            local_surface[local_name] = None
        elif dotted in ('torch_utils.' + name for name in TORCH_UTILS_SURFACE):
            local_surface[local_name] = TORCH_UTILS_SURFACE[parts[1]]
        elif len(parts) == 3 and parts[:2] == ['torch_utils', 'ops'] and parts[2] in OPS_SURFACE:
            local_surface[local_name] = OPS_SURFACE[parts[2]]
        else:
            problems.append(f'line {lineno}: imports {dotted!r}')

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname is None and '.' in alias.name and alias.name.split('.')[0] != 'torch_utils':
                    allow_module(alias.name.split('.')[0], alias.name.split('.')[0], node.lineno)
                elif alias.asname is None and '.' in alias.name:
                    problems.append(f'line {node.lineno}: "import {alias.name}" (use "from ... import ...")')
                else:
                    allow_module(alias.name, alias.asname or alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level > 0 or node.module is None:
                problems.append(f'line {node.lineno}: relative import (the source is executed standalone)')
                continue
            for alias in node.names:
                local_name = alias.asname or alias.name
                if node.module in ('torch_utils', 'torch_utils.ops'):
                    allow_module(f'{node.module}.{alias.name}', local_name, node.lineno)
                elif node.module.split('.')[0] == 'torch_utils':
                    surface = {'torch_utils.' + k: v for k, v in TORCH_UTILS_SURFACE.items()}
                    surface.update({'torch_utils.ops.' + k: v for k, v in OPS_SURFACE.items()})
                    if alias.name not in surface.get(node.module, ()):
                        problems.append(f'line {node.lineno}: imports {alias.name!r} from {node.module!r}')
                else:
                    allow_module(node.module, local_name, node.lineno)

    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            allowed = local_surface.get(node.value.id, None)
            if allowed is not None and node.attr not in allowed:
                problems.append(f'line {node.lineno}: uses {node.value.id}.{node.attr}, not in the API surface')
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == 'getattr' and node.args:
            problems += _getattr_violations(node, local_surface)
    return problems


def _getattr_violations(node, local_surface):
    """getattr(module, 'name', fallback) on a surface module: an optional name (this project's addition) with a
    fallback that is part of the surface, so that the code runs on the official code base too."""
    module = node.args[0].id if isinstance(node.args[0], ast.Name) else None
    allowed = local_surface.get(module)
    if allowed is None:
        return []
    name = node.args[1].value if len(node.args) > 1 and isinstance(node.args[1], ast.Constant) else None
    if name in allowed:
        return []
    fallback = node.args[2] if len(node.args) > 2 else None
    ok_fallback = (isinstance(fallback, ast.Attribute) and isinstance(fallback.value, ast.Name)
                   and fallback.value.id == module and fallback.attr in allowed)
    if name not in OPTIONAL_SURFACE.get(module_key(local_surface[module]), set()) or not ok_fallback:
        return [f'line {node.lineno}: getattr({module}, {name!r}) is neither in the surface nor an optional name '
                f'with a fallback in the surface']
    return []


def module_key(allowed_names):
    """The key of OPS_SURFACE or TORCH_UTILS_SURFACE whose allowed names these are."""
    for key, names in list(OPS_SURFACE.items()) + list(TORCH_UTILS_SURFACE.items()):
        if names is allowed_names:
            return key
    return None

# ----------------------------------------------------------------------------


@pytest.mark.parametrize('path', _persisted_module_paths(), ids=lambda p: p.name)
def test_pickled_module_uses_only_api_surface(path):
    assert path.is_file(), f'{path} is missing'
    problems = surface_violations(path.read_text())
    assert not problems, f'{path.name} reaches outside the pickle surface:\n' + '\n'.join(problems)


def test_discovery_finds_persisted_modules():
    names = [path.name for path in _persisted_module_paths()]
    assert 'networks_stylegan2.py' in names
    for name in names:
        assert _is_persisted_module(ast.parse((TRAINING_DIR / name).read_text()))


@pytest.mark.parametrize('src, expected', [
    ('import numpy as np\nimport scipy.signal\nimport torch\nimport math\n', 0),
    ('from torch_utils import misc\nmisc.assert_shape(x, [1])\n', 0),
    ('from torch_utils.ops import upfirdn2d\nupfirdn2d.upsample2d(x, f)\n', 0),
    ('from torch_utils.ops import upfirdn2d\nupfirdn2d._private_helper(x)\n', 1),
    ('from torch_utils import misc\nmisc.project_only_helper(x)\n', 1),
    ('from torch_utils import training_stats\n', 1),
    ('from training import networks_stylegan2\n', 1),
    ('from . import networks_stylegan2\n', 1),
    ('import legacy\n', 1),
    ('from torch_utils.ops.upfirdn2d import setup_filter\n', 0),
    ('from torch_utils.ops.upfirdn2d import _parse_padding\n', 1),
    ('import torch_utils.misc\n', 1),
    ('from torch_utils.ops import my_new_op\n', 1),
    ("from torch_utils.ops import bias_act\nf = getattr(bias_act, 'bias_act_', bias_act.bias_act)\n", 0),
    ("from torch_utils.ops import bias_act\nf = getattr(bias_act, 'bias_act_')\n", 1),
    ("from torch_utils.ops import bias_act\nf = getattr(bias_act, 'other', bias_act.bias_act)\n", 1),
])
def test_surface_checker_flags_violations(src, expected):
    assert len(surface_violations(src)) == expected


def test_documented_surface_is_the_enforced_one():
    """docs/architecture.md lists exactly the names this test allows."""
    doc = (TRAINING_DIR.parent / 'docs' / 'architecture.md').read_text()
    documented = {}
    for module, names in re.findall(r'^\| `torch_utils\.([\w.]+)` \| (.+) \|$', doc, flags=re.MULTILINE):
        documented[module] = set(re.findall(r'`(\w+)`', names))
    enforced = dict(TORCH_UTILS_SURFACE)
    enforced.update({f'ops.{name}': names for name, names in OPS_SURFACE.items()})
    assert documented == enforced
