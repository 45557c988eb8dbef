"""The ReLU family: rectifiers and their smooth and leaky variants.

f'(x) = 1 for x > 0 means no saturation on the positive side, which is why
ReLU-like units let gradients through deep stacks; the price is a dead (or
small-slope) negative side.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from gradvet.activations.core import Entry, Param

sigma = torch.sigmoid
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


def _ones(x):
    return torch.ones_like(x)


def _step(x):
    """1 for x > 0 else 0 (PyTorch's convention for relu'(0) = 0; 0 at NaN, as x > 0 is False there):
    sign(x) clamped at 0, the same values as (x > 0).to(x.dtype) in two float ops, several times
    cheaper on a CPU than a comparison's bool tensor converted back (the probe takes it every step)."""
    return x.sign().clamp_(min=0)


def _neg_exp(x):
    """exp(min(x, 0)): the negative branch's exp without overflow in the unused branch."""
    return torch.exp(x.clamp(max=0))


def _native_grad(backward, x, **kwargs):
    """f'(x) from torch's own fused backward kernel of f (`backward(grad_output, x)` with grad_output 1):
    one pass instead of a dozen elementwise ops (on a CPU 5 to 10 times faster for GELU; the probe takes
    f' of every activation input of a recorded step), and the same formula as below, up to float
    rounding. GELU's kernel is differentiable again (torch defines its double backward); SiLU's is not."""
    if not x.is_floating_point():
        x = x.to(torch.get_default_dtype())
    return backward(x.new_ones(()).expand_as(x), x, **kwargs)


def _gelu_grad(x):
    """Phi(x) + x phi(x) (torch.ops.aten.gelu_backward)."""
    return _native_grad(torch.ops.aten.gelu_backward, x)


def _gelu_tanh_grad(x):
    """0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 c x^2), t = tanh(sqrt(2/pi) (x + c x^3)), c = 0.044715
    (torch.ops.aten.gelu_backward, approximate='tanh')."""
    return _native_grad(torch.ops.aten.gelu_backward, x, approximate="tanh")


def _silu_grad(x):
    """s (1 + x (1 - s)), s = sigmoid(x): torch.ops.aten.silu_backward where no second derivative is asked
    for (torch defines none for that kernel), else the formula, which autograd differentiates again."""
    if x.requires_grad and torch.is_grad_enabled():
        return _swish_grad(x, 1.0)
    return _native_grad(torch.ops.aten.silu_backward, x)


def _swish(x, beta):
    return x * sigma(beta * x)


def _swish_grad(x, beta):
    s = sigma(beta * x)
    return s + beta * x * s * (1 - s)


def _mish_grad(x):
    t = torch.tanh(F.softplus(x))
    return t + x * (1 - t * t) * sigma(x)


def _softplus(x, beta):
    """(1/beta) log(1 + exp(beta x)) as logaddexp(beta x, 0)/beta: exact everywhere, no
    overflow, and autograd gives sigmoid(0) = 1/2 at 0 (relu + log1p(exp(-|x|)) gives 0)."""
    bx = beta * x
    return torch.logaddexp(bx, torch.zeros_like(bx)) / beta


def _hardswish_grad(x):
    return torch.where(x < -3, torch.zeros_like(x), torch.where(x > 3, _ones(x), (2 * x + 3) / 6))


def _srelu(x, t_left, a_left, t_right, a_right):
    right = t_right + a_right * (x - t_right)
    left = t_left + a_left * (x - t_left)
    return torch.where(x >= t_right, right, torch.where(x <= t_left, left, x))


def _srelu_grad(x, t_left, a_left, t_right, a_right):
    one = _ones(x)
    return torch.where(x > t_right, a_right * one, torch.where(x < t_left, a_left * one, one))


def _isrlu(x, alpha):
    return torch.where(x >= 0, x, x * torch.rsqrt(1 + alpha * x * x))


def _isrlu_grad(x, alpha):
    return torch.where(x >= 0, _ones(x), torch.rsqrt(1 + alpha * x * x) ** 3)


def _elish(x):
    e = _neg_exp(x)
    return torch.where(x >= 0, x, e - 1) * sigma(x)


def _elish_grad(x):
    s = sigma(x)
    e = _neg_exp(x)
    pos = s + x * s * (1 - s)
    neg = e * s + (e - 1) * s * (1 - s)
    return torch.where(x >= 0, pos, neg)


def _hard_elish(x):
    h = ((x + 1) / 2).clamp(0, 1)
    return torch.where(x >= 0, x, _neg_exp(x) - 1) * h


def _hard_elish_grad(x):
    h = ((x + 1) / 2).clamp(0, 1)
    dh = ((x > -1) & (x < 1)).to(x.dtype) / 2
    e = _neg_exp(x)
    return torch.where(x >= 0, h + x * dh, e * h + (e - 1) * dh)


def _tanh_exp(x):
    # tanh(e^20) is 1.0 in float64, so clamping the exponent changes nothing but overflow.
    return x * torch.tanh(torch.exp(x.clamp(max=20)))


def _tanh_exp_grad(x):
    e = torch.exp(x.clamp(max=20))
    t = torch.tanh(e)
    return t + x * e * (1 - t * t)


def _serf(x):
    return x * torch.erf(_softplus(x, 1.0))


def _serf_grad(x):
    sp = _softplus(x, 1.0)
    return torch.erf(sp) + x * _TWO_OVER_SQRT_PI * torch.exp(-sp * sp) * sigma(x)


def _smelu(x, beta):
    mid = (x + beta) ** 2 / (4 * beta)
    return torch.where(x <= -beta, torch.zeros_like(x), torch.where(x >= beta, x, mid))


def _smelu_grad(x, beta):
    mid = (x + beta) / (2 * beta)
    return torch.where(x <= -beta, torch.zeros_like(x), torch.where(x >= beta, _ones(x), mid))


def _celu(x, alpha):
    """max(0, x) + min(0, alpha (exp(x/alpha) - 1)), by hand: F.celu rounds 1/alpha
    to float32 internally (relative error ~3e-8 in float64 for alpha = 4.33)."""
    return torch.where(x > 0, x, alpha * torch.expm1((x / alpha).clamp(max=0)))


def _leaky(x, slope):
    return torch.where(x > 0, x, slope * x)


def _leaky_grad(x, slope):
    return torch.where(x > 0, _ones(x), slope * _ones(x))


def _prelu_module(slope):
    return nn.PReLU(num_parameters=1, init=slope)


ENTRIES = [
    Entry(
        "relu", "relu", "max(0, x)",
        fn=torch.relu, grad=_step,
        aliases=("rectifier", "rectified_linear"),
        pros=("f' = 1 for x > 0: no saturation, gradients pass deep stacks unchanged",
              "cheap; sparse activations", "the sensible default for hidden layers"),
        cons=("f' = 0 for x < 0: units whose input stays negative die",
              "not zero-centred"),
        paper="Nair & Hinton, Rectified linear units improve restricted Boltzmann machines; Glorot, Bordes & Bengio 2011",
        year=2010, module=nn.ReLU,
    ),
    Entry(
        "leaky_relu", "relu", "where(x > 0, x, negative_slope*x)",
        fn=lambda x, negative_slope: F.leaky_relu(x, negative_slope),
        grad=lambda x, negative_slope: _leaky_grad(x, negative_slope),
        params=(Param("negative_slope", 0.01, 0.0, 1.0, doc="slope for x <= 0"),),
        aliases=("lrelu", "leakyrelu"),
        pros=("a small slope for x < 0 keeps every unit alive",),
        cons=("the slope is one more hyper-parameter; kink at 0",),
        paper="Maas, Hannun & Ng, Rectifier nonlinearities improve neural network acoustic models",
        year=2013, module=lambda negative_slope: nn.LeakyReLU(negative_slope),
    ),
    Entry(
        "prelu", "relu", "where(x > 0, x, slope*x)",
        fn=_leaky, grad=_leaky_grad,
        params=(Param("slope", 0.25, 0.0, 1.0, doc="initial value of the learnable slope for x <= 0"),),
        aliases=("parametric_relu",),
        pros=("leaky ReLU whose negative slope is learnt", "with He init, trained 30-layer nets in He et al. 2015"),
        cons=("one more parameter per layer (or channel); can overfit on small data",),
        paper="He, Zhang, Ren & Sun, Delving deep into rectifiers",
        year=2015, module=_prelu_module,
    ),
    Entry(
        "rrelu", "relu", "where(x > 0, x, (lower + upper)/2*x)",
        fn=lambda x, lower, upper: _leaky(x, (lower + upper) / 2),
        grad=lambda x, lower, upper: _leaky_grad(x, (lower + upper) / 2),
        params=(Param("lower", 1.0 / 8.0, 0.0, 1.0, doc="lower bound of the random slope"),
                Param("upper", 1.0 / 3.0, 0.0, 1.0, doc="upper bound of the random slope")),
        aliases=("randomized_relu", "randomised_relu"),
        pros=("slope drawn from U(lower, upper) in training (a regulariser), fixed at the mean in eval",),
        cons=("random in training: runs are noisier; fn/grad here are the eval-mode function",),
        paper="Xu, Wang, Chen & Li, Empirical evaluation of rectified activations in convolutional network",
        year=2015, module=lambda lower, upper: nn.RReLU(lower, upper),
    ),
    Entry(
        "elu", "relu", "where(x > 0, x, alpha*(exp(x) - 1))",
        fn=lambda x, alpha: F.elu(x, alpha),
        grad=lambda x, alpha: torch.where(x > 0, _ones(x), alpha * _neg_exp(x)),
        params=(Param("alpha", 1.0, 0.0, 10.0, open_low=True, doc="negative saturation value -alpha"),),
        aliases=("exponential_linear",),
        pros=("negative outputs push the mean toward 0", "smooth at 0 when alpha = 1"),
        cons=("saturates for x << 0 (by design)", "exp costs more than ReLU"),
        paper="Clevert, Unterthiner & Hochreiter, Fast and accurate deep network learning by exponential linear units",
        year=2015, module=lambda alpha: nn.ELU(alpha),
    ),
    Entry(
        "selu", "relu",
        "1.0507009873554805*where(x > 0, x, 1.6732632423543772*(exp(x) - 1))",
        fn=F.selu,
        grad=lambda x: SELU_SCALE * torch.where(x > 0, _ones(x), SELU_ALPHA * _neg_exp(x)),
        aliases=("scaled_elu",),
        pros=("self-normalising: with N(0, 1/n) weights, activations converge to mean 0, variance 1",),
        cons=("needs LeCun-normal init and alpha-dropout to keep its fixed point", "kink at 0 (scale*alpha != scale)"),
        paper="Klambauer, Unterthiner, Mayr & Hochreiter, Self-normalizing neural networks",
        year=2017, module=nn.SELU,
    ),
    Entry(
        "celu", "relu", "max(0, x) + min(0, alpha*(exp(x/alpha) - 1))",
        fn=_celu,
        grad=lambda x, alpha: torch.where(x > 0, _ones(x), torch.exp((x / alpha).clamp(max=0))),
        params=(Param("alpha", 1.0, 0.0, 10.0, open_low=True, doc="negative saturation value -alpha"),),
        aliases=("continuously_differentiable_elu",),
        pros=("ELU made C1 for every alpha",),
        cons=("saturates for x << 0", "exp costs more than ReLU"),
        paper="Barron, Continuously differentiable exponential linear units",
        year=2017, module=lambda alpha: nn.CELU(alpha),
    ),
    Entry(
        "gelu", "relu", "x*(1 + erf(x/sqrt(2)))/2",
        fn=F.gelu, grad=_gelu_grad,
        aliases=("gaussian_error_linear_unit",),
        pros=("smooth ReLU, x times the Gaussian CDF; the default in transformers",),
        cons=("non-monotonic dip near x = -0.75", "erf costs more than ReLU"),
        paper="Hendrycks & Gimpel, Gaussian error linear units (GELUs)",
        year=2016, module=nn.GELU,
    ),
    Entry(
        "gelu_tanh", "relu", "x*(1 + tanh(sqrt(2/pi)*(x + 0.044715*x**3)))/2",
        fn=lambda x: F.gelu(x, approximate="tanh"), grad=_gelu_tanh_grad,
        aliases=("gelu_approx", "gelu_new", "approximate_gelu"),
        pros=("the tanh approximation of GELU used by BERT and GPT-2",),
        cons=("differs from exact GELU by up to ~5e-4",),
        paper="Hendrycks & Gimpel, Gaussian error linear units (GELUs)",
        year=2016, module=lambda: nn.GELU(approximate="tanh"),
    ),
    Entry(
        "silu", "relu", "x*sigmoid(x)",
        fn=F.silu, grad=_silu_grad,
        aliases=("swish1", "swish_1", "sil", "sigmoid_linear_unit"),
        pros=("smooth, non-monotonic ReLU; swish with beta = 1",),
        cons=("costs a sigmoid per unit",),
        paper="Elfwing, Uchibe & Doya 2017; Hendrycks & Gimpel 2016; Ramachandran et al. 2017",
        year=2017, module=nn.SiLU,
    ),
    Entry(
        "swish", "relu", "x*sigmoid(beta*x)",
        fn=_swish, grad=_swish_grad,
        params=(Param("beta", 1.0, 0.0, 100.0, doc="beta = 1: SiLU; beta -> inf: ReLU; beta = 0: x/2"),),
        aliases=("swish_beta",),
        pros=("found by automated search; interpolates between linear (beta = 0) and ReLU (beta -> inf)",),
        cons=("costs a sigmoid per unit", "beta is one more hyper-parameter"),
        paper="Ramachandran, Zoph & Le, Searching for activation functions",
        year=2017,
    ),
    Entry(
        "mish", "relu", "x*tanh(softplus(x))",
        fn=F.mish, grad=_mish_grad,
        aliases=(),
        pros=("smooth, non-monotonic, unbounded above; strong in vision benchmarks",),
        cons=("the costliest of the smooth ReLUs (softplus, tanh)",),
        paper="Misra, Mish: a self regularized non-monotonic activation function",
        year=2019, module=nn.Mish,
    ),
    Entry(
        "softplus", "relu", "softplus(beta*x)/beta",
        fn=_softplus,
        grad=lambda x, beta: sigma(beta * x),
        params=(Param("beta", 1.0, 0.0, 100.0, open_low=True, doc="sharpness; beta -> inf gives ReLU"),),
        aliases=("smooth_relu",),
        pros=("smooth ReLU: f' = sigmoid(beta x) is never exactly 0",),
        cons=("not zero-centred, f' < 1 everywhere; saturates for x << 0",
              "PyTorch's module switches to x above beta*x > 20 (differs by < 2.1e-9/beta)"),
        paper="Dugas et al., Incorporating second-order functional knowledge for better option pricing",
        year=2001, module=lambda beta: nn.Softplus(beta=beta),
    ),
    Entry(
        "relu6", "relu", "clip(x, 0, 6)",
        fn=F.relu6,
        grad=lambda x: ((x > 0) & (x < 6)).to(x.dtype),
        aliases=(),
        pros=("ReLU capped at 6: robust in low-precision arithmetic (MobileNets)",),
        cons=("dead for x < 0 and for x > 6",),
        paper="Krizhevsky, Convolutional deep belief networks on CIFAR-10",
        year=2010, module=nn.ReLU6,
    ),
    Entry(
        "hardswish", "relu", "x*clip(x + 3, 0, 6)/6",
        fn=F.hardswish, grad=_hardswish_grad,
        aliases=("hard_swish", "hard_silu", "hardsilu"),
        pros=("piecewise-quadratic swish without exp: cheap on mobile hardware",),
        cons=("dead for x < -3",),
        paper="Howard et al., Searching for MobileNetV3",
        year=2019, module=nn.Hardswish,
    ),
    Entry(
        "squared_relu", "relu", "max(0, x)**2",
        fn=lambda x: torch.relu(x) ** 2,
        grad=lambda x: 2 * torch.relu(x),
        aliases=("relu_squared", "relu2"),
        pros=("found strong for transformer feed-forward layers (Primer)",),
        cons=("f' = 2x grows without bound: explodes easily in deep stacks", "dead for x < 0"),
        paper="So et al., Primer: searching for efficient transformers for language modeling",
        year=2021,
    ),
    Entry(
        "srelu", "relu",
        "where(x >= t_right, t_right + a_right*(x - t_right), where(x <= t_left, t_left + a_left*(x - t_left), x))",
        fn=_srelu, grad=_srelu_grad,
        params=(Param("t_left", -1.0, -100.0, 100.0, doc="left threshold"),
                Param("a_left", 0.1, 0.0, 10.0, doc="slope left of t_left"),
                Param("t_right", 1.0, -100.0, 100.0, doc="right threshold"),
                Param("a_right", 0.5, 0.0, 10.0, doc="slope right of t_right")),
        aliases=("s_shaped_relu",),
        pros=("three linear pieces, learnable in the paper: can imitate convex and non-convex shapes",),
        cons=("four parameters; kinks at both thresholds",),
        paper="Jin et al., Deep learning with S-shaped rectified linear activation units",
        year=2016,
    ),
    Entry(
        "isrlu", "relu", "where(x >= 0, x, x/sqrt(1 + alpha*x**2))",
        fn=_isrlu, grad=_isrlu_grad,
        params=(Param("alpha", 1.0, 0.0, 100.0, open_low=True, doc="negative saturation value -1/sqrt(alpha)"),),
        aliases=("inverse_square_root_linear_unit",),
        pros=("ELU-like negative side without exp: cheaper; smooth through second order",),
        cons=("saturates for x << 0",),
        paper="Carlile et al., Improving deep learning by inverse square root linear units (ISRLUs)",
        year=2017,
    ),
    Entry(
        "elish", "relu", "where(x >= 0, x*sigmoid(x), (exp(x) - 1)*sigmoid(x))",
        fn=_elish, grad=_elish_grad,
        aliases=(),
        pros=("swish on the right, ELU times sigmoid on the left",),
        cons=("costs exp and sigmoid", "non-monotonic"),
        paper="Basirat & Roth, The quest for the golden activation function",
        year=2018,
    ),
    Entry(
        "hard_elish", "relu",
        "where(x >= 0, x*clip((x + 1)/2, 0, 1), (exp(x) - 1)*clip((x + 1)/2, 0, 1))",
        fn=_hard_elish, grad=_hard_elish_grad,
        aliases=("hardelish",),
        pros=("ELiSH with a hard sigmoid: cheaper",),
        cons=("kinks at -1 and 1; dead for x < -1",),
        paper="Basirat & Roth, The quest for the golden activation function",
        year=2018,
    ),
    Entry(
        "shifted_softplus", "relu", "softplus(x) - log(2)",
        fn=lambda x: _softplus(x, 1.0) - math.log(2.0),
        grad=sigma,
        aliases=("ssp",),
        pros=("softplus shifted so that f(0) = 0 (SchNet)",),
        cons=("f' = sigmoid(x) <= 1, saturates for x << 0",),
        paper="Schuett et al., SchNet: a continuous-filter convolutional neural network",
        year=2017,
    ),
    Entry(
        "tanh_exp", "relu", "x*tanh(exp(x))",
        fn=_tanh_exp, grad=_tanh_exp_grad,
        aliases=("tanhexp",),
        pros=("fast-rising smooth ReLU (f'(x) jumps to about 1 near x = 0)",),
        cons=("non-monotonic; max f' above 1", "costs exp and tanh"),
        paper="Liu & Di, TanhExp: a smooth activation function with high convergence speed",
        year=2020,
    ),
    Entry(
        "serf", "relu", "x*erf(softplus(x))",
        fn=_serf, grad=_serf_grad,
        aliases=(),
        pros=("smooth self-regularised ReLU akin to mish, with erf in place of tanh",),
        cons=("costs softplus and erf", "non-monotonic"),
        paper="Nag, Bhattacharyya et al., SERF: towards better training of deep neural networks using log-Softplus ERror activation Function",
        year=2023,
    ),
    Entry(
        "smelu", "relu", "where(x <= -beta, 0, where(x >= beta, x, (x + beta)**2/(4*beta)))",
        fn=_smelu, grad=_smelu_grad,
        params=(Param("beta", 1.0, 0.0, 100.0, open_low=True, doc="half-width of the quadratic middle piece"),),
        aliases=("smooth_relu_quadratic",),
        pros=("ReLU with a quadratic middle: C1, cheap, improves reproducibility (Shamir et al.)",),
        cons=("dead for x < -beta",),
        paper="Shamir, Lin & Coviello, Smooth activations and reproducibility in deep networks",
        year=2020,
    ),
]
