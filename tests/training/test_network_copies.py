"""Network modules are embedded in pickles and must stand alone, so each carries its own copy of the pieces
the families share (the pickle contract forces the copies). This test keeps the copies from drifting: a
shared function or method is the same code in every module (docstrings and comments aside), except where
DIFFERENCES lists the modules and the reason."""

import ast
import itertools
import pathlib

import pytest

TRAINING_DIR = pathlib.Path(__file__).resolve().parents[2] / 'training'
MODULES = ['networks_stylegan2', 'networks_stylegan3', 'networks_creps', 'networks_stylegan_t']

# Pieces that several network modules define.
SHARED = [
    'normalize_2nd_moment',
    'FullyConnectedLayer.__init__',
    'FullyConnectedLayer.forward',
    'FullyConnectedLayer.extra_repr',
    'MappingNetwork.__init__',
    'MappingNetwork.forward',
    'MappingNetwork.extra_repr',
]

# (piece, module) -> why that module's copy differs from the others. The modules not listed for a piece
# must agree with each other.
DIFFERENCES = {
    ('FullyConnectedLayer.__init__', 'networks_stylegan3'):
        'the official StyleGAN3 layer takes weight_init and a per-channel bias_init, in another argument order',
    ('FullyConnectedLayer.__init__', 'networks_creps'):
        'the CREPS release adds weight_norm (its ToRes affine layers skip the 1/sqrt(fan-in) gain)',
    ('MappingNetwork.__init__', 'networks_stylegan3'):
        'the official StyleGAN3 mapping network has no embed_features, layer_features or activation arguments',
    ('MappingNetwork.forward', 'networks_stylegan3'):
        'StyleGAN3 always broadcasts to num_ws and always tracks w_avg',
    ('MappingNetwork.__init__', 'networks_stylegan_t'):
        'StyleGAN-T maps z alone and appends the text embedding after the MLP',
    ('MappingNetwork.forward', 'networks_stylegan_t'):
        'StyleGAN-T maps z alone and appends the text embedding after the MLP; truncation skips the text part',
}


def _without_docstring(node):
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
        body = body[1:]
    return ast.dump(ast.Module(body=node.decorator_list + body, type_ignores=[]), annotate_fields=False)


def pieces(module_name):
    """{'name' or 'Class.method': code without docstrings} of a module's top level."""
    tree = ast.parse((TRAINING_DIR / f'{module_name}.py').read_text())
    found = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            found[node.name] = _without_docstring(node)
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    found[f'{node.name}.{item.name}'] = _without_docstring(item)
    return found


@pytest.mark.parametrize('piece', SHARED)
def test_shared_piece_is_the_same_code_except_where_listed(piece):
    code = {name: pieces(name).get(piece) for name in MODULES}
    present = [name for name in MODULES if code[name] is not None]
    assert len(present) >= 2, f'{piece} is defined in {present} only; drop it from SHARED'
    agreeing = [name for name in present if (piece, name) not in DIFFERENCES]
    for a, b in itertools.combinations(agreeing, 2):
        assert code[a] == code[b], f'{piece} differs between {a} and {b}; make them agree or list the reason in DIFFERENCES'


def test_listed_differences_are_real():
    for (piece, name), reason in DIFFERENCES.items():
        others = [pieces(other).get(piece) for other in MODULES if other != name and (piece, other) not in DIFFERENCES]
        assert reason and any(code is not None and code != pieces(name)[piece] for code in others), \
            f'{piece} of {name} no longer differs; remove it from DIFFERENCES'
