"""2-D convolutions whose gradients can skip the weights.

conv2d() and conv_transpose2d() take the arguments of their torch.nn.functional namesakes. With
`enabled = False` they are exactly those functions. With `enabled = True` they run through custom
autograd functions whose backward passes are themselves built from the same custom functions, so
gradients of any order are available, and inside `with no_weight_gradients():` the weight gradient
is not computed at all (it is reported as zero). The R1 penalty uses that: it differentiates the
discriminator output with respect to the images only, then differentiates the result with respect
to the weights, which still flows through the input-gradient convolutions.
"""

import contextlib

import torch
import torch.nn.functional as F

#----------------------------------------------------------------------------

enabled = False                     # Use the custom autograd functions below?
weight_gradients_disabled = False   # Set by no_weight_gradients().


@contextlib.contextmanager
def no_weight_gradients(disable=True):
    """Within the context, backward passes through conv2d()/conv_transpose2d() leave the weights
    without gradient, when the custom path is enabled."""
    global weight_gradients_disabled
    previous = weight_gradients_disabled
    if disable:
        weight_gradients_disabled = True
    try:
        yield
    finally:
        weight_gradients_disabled = previous

#----------------------------------------------------------------------------

def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Same as torch.nn.functional.conv2d()."""
    if not enabled:
        return F.conv2d(input=input, weight=weight, bias=bias, stride=stride, padding=padding, dilation=dilation, groups=groups)
    op = _conv2d_function(transpose=False, weight_shape=weight.shape, stride=stride, padding=padding, output_padding=0, dilation=dilation, groups=groups)
    return op.apply(input, weight, bias)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """Same as torch.nn.functional.conv_transpose2d()."""
    if not enabled:
        return F.conv_transpose2d(input=input, weight=weight, bias=bias, stride=stride, padding=padding, output_padding=output_padding, groups=groups, dilation=dilation)
    op = _conv2d_function(transpose=True, weight_shape=weight.shape, stride=stride, padding=padding, output_padding=output_padding, dilation=dilation, groups=groups)
    return op.apply(input, weight, bias)

#----------------------------------------------------------------------------

def _pair(value):
    if isinstance(value, (list, tuple)):
        assert len(value) == 2
        return tuple(int(v) for v in value)
    return (int(value), int(value))


_functions = dict()

def _conv2d_function(transpose, weight_shape, stride, padding, output_padding, dilation, groups):
    """Returns the autograd function for a convolution with fixed hyperparameters (cached)."""
    weight_shape = tuple(weight_shape)
    stride = _pair(stride)
    padding = _pair(padding)
    output_padding = _pair(output_padding)
    dilation = _pair(dilation)
    assert len(weight_shape) == 4, 'weight must have 4 dimensions'
    key = (transpose, weight_shape, stride, padding, output_padding, dilation, groups)
    if key in _functions:
        return _functions[key]
    kernel_size = weight_shape[2:]
    common = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)

    def input_grad_output_padding(input_shape, output_shape):
        """output_padding of the opposite convolution so that it reproduces input_shape."""
        if transpose:
            return (0, 0)
        return tuple(
            input_shape[i + 2] - ((output_shape[i + 2] - 1) * stride[i] - 2 * padding[i] + dilation[i] * (kernel_size[i] - 1) + 1)
            for i in range(2))

    def input_grad(grad_output, weight, input_shape):
        """d(loss)/d(input), through the opposite convolution, itself a custom function."""
        op = _conv2d_function(transpose=(not transpose), weight_shape=weight_shape, output_padding=input_grad_output_padding(input_shape, grad_output.shape), **common)
        return op.apply(grad_output, weight, None)

    class Conv2d(torch.autograd.Function):
        @staticmethod
        def forward(ctx, input, weight, bias):
            assert weight.shape == weight_shape
            ctx.save_for_backward(input if weight.requires_grad else None, weight if input.requires_grad else None)
            ctx.input_shape = input.shape
            if transpose:
                return F.conv_transpose2d(input=input, weight=weight, bias=bias, output_padding=output_padding, **common)
            return F.conv2d(input=input, weight=weight, bias=bias, **common)

        @staticmethod
        def backward(ctx, grad_output):
            input, weight = ctx.saved_tensors
            grad_input = grad_weight = grad_bias = None
            if ctx.needs_input_grad[0]:
                grad_input = input_grad(grad_output, weight, ctx.input_shape)
                assert grad_input.shape == ctx.input_shape
            if ctx.needs_input_grad[1] and not weight_gradients_disabled:
                grad_weight = Conv2dWeightGrad.apply(grad_output, input)
                assert grad_weight.shape == weight_shape
            if ctx.needs_input_grad[2]:
                grad_bias = grad_output.sum([0, 2, 3])
            return grad_input, grad_weight, grad_bias

    class Conv2dWeightGrad(torch.autograd.Function):
        """d(loss)/d(weight) as a function of (grad_output, input); bilinear in the two."""
        @staticmethod
        def forward(ctx, grad_output, input):
            ctx.save_for_backward(grad_output if input.requires_grad else None, input if grad_output.requires_grad else None)
            ctx.input_shape = input.shape
            weight_stub = input.new_empty(weight_shape)  # only its shape is read
            _, grad_weight, _ = torch.ops.aten.convolution_backward(
                grad_output, input, weight_stub, None, list(stride), list(padding), list(dilation),
                transpose, list(output_padding), groups, [False, True, False])
            return grad_weight

        @staticmethod
        def backward(ctx, grad2_grad_weight):
            grad_output, input = ctx.saved_tensors
            grad2_grad_output = grad2_input = None
            if ctx.needs_input_grad[0]:
                # The forward convolution of the input with the weight perturbation.
                op = _conv2d_function(transpose=transpose, weight_shape=weight_shape, output_padding=output_padding, **common)
                grad2_grad_output = op.apply(input, grad2_grad_weight, None)
                assert grad2_grad_output.shape == grad_output.shape
            if ctx.needs_input_grad[1]:
                # The input gradient for the weight perturbation.
                grad2_input = input_grad(grad_output, grad2_grad_weight, ctx.input_shape)
                assert grad2_input.shape == ctx.input_shape
            return grad2_grad_output, grad2_input

    _functions[key] = Conv2d
    return Conv2d

#----------------------------------------------------------------------------
