"""Scaling laws as named objects: the formula, its parameters and how to solve for them.

A law knows only its own mathematics: ``f(x, theta)``, where its residuals live (``space``:
``"linear"`` or ``"log"``), starting points, bounds, and when the data cannot identify it.
Everything statistical that is the same for every law (the multi-start search, robust
losses, bootstrap intervals, diagnostics, grouping) lives in `analysis.fit`, so a new law
is one small class::

    @register_law
    class Exponential(Law):
        name = "exp"
        params = ("c", "k", "r")
        formula = "c - k * exp(-r * x)"
        def f(self, x, theta):
            c, k, r = theta
            return c - k * np.exp(-r * np.asarray(x, float))
        def initial(self, x, y):
            return np.array([y.max(), y.max() - y.min(), 1 / np.mean(x)])

Joint laws (error as a function of model size *and* images) set ``inputs = 2`` and
receive ``x`` as an ``(n, 2)`` array.

Parameter letters mean the same in every one-input law: ``a`` the scale (or intercept),
``b`` the exponent (or slope per decade), ``c`` the irreducible floor, ``d`` the offset
in units of x::

    loglinear   a + b * log10(x)          a: y at x = 1, b: gain per 10x
    power       a * x**-b                 a: scale, b: exponent
    saturating  a * (x + d)**-b + c       a: scale, b: exponent, c: floor, d: offset

The joint law keeps Hoffmann et al.'s letters (E floor; A, alpha for model size N; B,
beta for data D), so its numbers compare directly with the published ones.

Direction: ``decreasing`` says whether the law describes an error or loss (lower is
better), which is what a frontier keeps per bin; the log-linear law is the paper's law of
*accuracy* (higher is better). Fit it to an error with ``best="min"``.

Solver space. Scales differ by orders of magnitude between parameters (``A ~ 500`` next to
``alpha ~ 0.3``), which bounded quasi-Newton methods handle badly, so a law may search over
``u = encode(theta)`` (e.g. ``log A``) instead: `starts` and `bounds` are in that space, and
`decode` maps back. The defaults are the identity, so a law that needs none of this only
writes ``f``.
"""

from __future__ import annotations

import difflib
import itertools
from typing import ClassVar

import numpy as np


class Law:
    """Base class of a scaling law ``y = f(x; theta)``.

    Subclasses set ``name``, ``params`` and ``formula`` and implement `f`; they override
    `initial` / `starts` (where the search begins), `bounds`, `check`, `log_f` (a
    numerically stable log of ``f`` for log-space laws), `jacobian` (analytic derivatives
    of the residual, for speed) or `solve` (a closed form) when they can do better than
    the generic multi-start search in `analysis.search.minimise`.
    """

    name: ClassVar[str] = ""
    params: ClassVar[tuple[str, ...]] = ()
    formula: ClassVar[str] = ""
    inputs: ClassVar[int] = 1
    """How many x columns the law takes (1, or more for joint laws)."""
    space: ClassVar[str] = "linear"
    """Where residuals are measured: ``"linear"`` (y - f) or ``"log"`` (log y - log f),
    for laws of quantities spanning decades (errors, losses) that are fitted in log space."""
    decreasing: ClassVar[bool] = False
    """True for laws of an error or loss (lower is better): a frontier then keeps the
    smallest y per bin (`analysis.select.direction`); False for laws of an accuracy."""

    # -- the mathematics
    def f(self, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """The law's prediction at ``x`` for parameter vector ``theta``."""
        raise NotImplementedError

    def log_f(self, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """``log f``; override with a stable form (log-sum-exp) where one exists."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(self.f(x, theta))

    # -- the search
    def initial(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """One starting point for the solver, in parameter space."""
        return np.zeros(len(self.params))

    def starts(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Starting points (rows) in solver space; the fit keeps the best end point."""
        return np.atleast_2d(self.encode(np.asarray(self.initial(x, y), float)))

    def bounds(self, x: np.ndarray | None = None,
               y: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds in solver space (``-inf``/``inf`` for none)."""
        return np.full(len(self.params), -np.inf), np.full(len(self.params), np.inf)

    def encode(self, theta: np.ndarray) -> np.ndarray:
        """Parameters -> solver space (identity unless overridden)."""
        return np.asarray(theta, float)

    def decode(self, u: np.ndarray) -> np.ndarray:
        """Solver space -> parameters (identity unless overridden)."""
        return np.asarray(u, float)

    def jacobian(self, x: np.ndarray, u: np.ndarray) -> np.ndarray | None:
        """d residual / d u as an ``(n, p)`` array, or None for finite differences."""
        return None

    def check(self, x: np.ndarray, y: np.ndarray) -> str | None:
        """Why these points cannot identify the law (one line), or None when they can."""
        if len(y) < len(self.params):
            return f"needs at least {len(self.params)} points, has {len(y)}"
        if self.space == "log" and np.any(np.asarray(y) <= 0):
            return "needs y > 0 (fitted in log space)"
        return None

    def solve(self, x: np.ndarray, y: np.ndarray, loss: str = "linear", delta: float = 1.0,
              method: str | None = None, starts: np.ndarray | None = None, **options):
        """Best-fit parameters and search diagnostics ``(theta, info)``.

        The default is the multi-start bounded search of `analysis.search.minimise`; a
        law with a closed form returns it for ``loss="linear"``.
        """
        from analysis.search import minimise  # the search is statistics, not the law's own

        return minimise(self, x, y, loss=loss, delta=delta, method=method, starts=starts,
                        **options)

    # -- evaluation helpers
    def transform(self, y: np.ndarray) -> np.ndarray:
        """y in the space residuals are measured in."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(y) if self.space == "log" else np.asarray(y, float)

    def untransform(self, z: np.ndarray) -> np.ndarray:
        return np.exp(z) if self.space == "log" else np.asarray(z, float)

    def fitted(self, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """The prediction in residual space (``log f`` for log-space laws)."""
        return self.log_f(x, theta) if self.space == "log" else self.f(x, theta)

    def __call__(self, x, theta) -> np.ndarray:
        return self.f(np.asarray(x, float), np.asarray(theta, float))

    def __repr__(self) -> str:
        return f"<law {self.name!r}: y = {self.formula}>"


LAWS: dict[str, Law] = {}
"""Registered laws by name; `fit_law(..., law=name)` looks them up here."""


def register_law(law):
    """Register a `Law` subclass (usable as a class decorator) or instance under its name."""
    instance = law() if isinstance(law, type) else law
    if not isinstance(instance, Law) or not instance.name:
        raise TypeError(f"{law!r} is not a named Law")
    LAWS[instance.name] = instance
    return law


def get_law(law: str | Law) -> Law:
    """A registered law by name (or a `Law` instance, returned as is)."""
    if isinstance(law, Law):
        return law
    if law not in LAWS:
        close = difflib.get_close_matches(str(law), LAWS, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(sorted(LAWS))}"
        raise KeyError(f"law={law!r} is not registered: {hint}")
    return LAWS[law]


def _logsumexp(t: np.ndarray) -> np.ndarray:
    """Row-wise log-sum-exp (scipy's is ~15x slower on the small arrays fits evaluate)."""
    m = t.max(axis=1)
    return m + np.log(np.exp(t - m[:, None]).sum(axis=1))


def _softmax(t: np.ndarray) -> np.ndarray:
    e = np.exp(t - t.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _ols(u: np.ndarray, v: np.ndarray) -> tuple[float, float]:
    """Intercept and slope of v on u."""
    slope, intercept = np.polyfit(u, v, 1)
    return float(intercept), float(slope)


class _StraightInLogX(Law):
    """A law that is a straight line once x is logged: ordinary least squares solves it in
    closed form under the plain loss; robust losses fall back to the multi-start search."""

    log_of = "log of x"

    def check(self, x, y):
        if np.any(np.asarray(x) <= 0):
            return f"needs x > 0 ({self.log_of})"
        if len(np.unique(x)) < 2:
            return "needs at least 2 distinct x values"
        return super().check(x, y)

    def solve(self, x, y, loss="linear", delta=1.0, method=None, starts=None, **options):
        if loss == "linear":
            return self.initial(x, y), {"objective": None, "starts": 0, "agree": 1.0}
        return super().solve(x, y, loss=loss, delta=delta, method=method, starts=starts,
                             **options)


@register_law
class LogLinear(_StraightInLogX):
    """The paper's law: accuracy gains a fixed number of points per 10x more images.

    ``b`` is that number (points per decade of x). Solved in closed form (ordinary least
    squares on log10 x) unless a robust loss is asked for.
    """

    name = "loglinear"
    log_of = "log10 of x"
    params = ("a", "b")
    formula = "a + b * log10(x)"

    def f(self, x, theta):
        a, b = theta
        return a + b * np.log10(x)

    def initial(self, x, y):
        return np.array(_ols(np.log10(x), y))



@register_law
class PowerLaw(_StraightInLogX):
    """Error falls as a power of x: ``E = a * x**-b`` (Cherti et al. 2023 on a frontier).

    Fitted in log-log space, where it is a straight line, so ``loss="linear"`` is closed
    form; ``a`` is the scale and ``b`` the exponent (error shrinks by ``10**-b`` per
    decade of x), as in `SaturatingPowerLaw`.
    """

    name = "power"
    params = ("a", "b")
    formula = "a * x**-b"
    space = "log"
    decreasing = True

    def f(self, x, theta):
        a, b = theta
        return a * np.asarray(x, float) ** -b

    def log_f(self, x, theta):
        a, b = theta
        return np.log(a) - b * np.log(x)

    def encode(self, theta):
        return np.array([np.log(theta[0]), theta[1]])

    def decode(self, u):
        return np.array([np.exp(u[0]), u[1]])

    def initial(self, x, y):
        intercept, slope = _ols(np.log(x), np.log(y))
        return np.array([np.exp(intercept), -slope])

    def bounds(self, x=None, y=None):
        return np.array([-700.0, -10.0]), np.array([700.0, 10.0])

    def jacobian(self, x, u):
        return np.column_stack([-np.ones(len(x)), np.log(x)])  # d(log y - log f)/du



@register_law
class SaturatingPowerLaw(Law):
    """``E = a * (x + d)**-b + c`` (Zhai et al. 2022): a power law that bends to an
    irreducible error ``c`` at large x and flattens at small x (``d``, in units of x).

    Searched over ``(log a, b, c, log10(1 + d))`` from a small grid of exponents and
    offsets, in log space; ``c`` is bounded by the smallest observed error.
    """

    name = "saturating"
    params = ("a", "b", "c", "d")
    formula = "a * (x + d)**-b + c"
    space = "log"
    decreasing = True

    def f(self, x, theta):
        a, b, c, d = theta
        return a * (np.asarray(x, float) + d) ** -b + c

    def log_f(self, x, theta):
        a, b, c, d = theta
        head = np.log(a) - b * np.log(np.asarray(x, float) + d)
        return np.logaddexp(head, np.log(c)) if c > 0 else head

    def encode(self, theta):
        a, b, c, d = theta
        return np.array([np.log(a), b, c, np.log10(1 + d)])

    def decode(self, u):
        return np.array([np.exp(u[0]), u[1], u[2], 10 ** u[3] - 1])

    def bounds(self, x=None, y=None):
        c_max = 0.999 * float(np.min(y)) if y is not None and len(y) else np.inf
        d_max = np.log10(1 + 10 * float(np.max(x))) if x is not None and len(x) else 30.0
        return np.array([-50.0, 0.0, 0.0, 0.0]), np.array([50.0, 5.0, c_max, d_max])

    def initial(self, x, y):
        return self.decode(self.starts(x, y)[0])

    def starts(self, x, y):
        x, y = np.asarray(x, float), np.asarray(y, float)
        rows = []
        for b, c_frac, d_frac in itertools.product((0.1, 0.3, 0.7), (0.0, 0.5, 0.9),
                                                   (0.0, 0.1)):
            c = c_frac * y.min()
            d = d_frac * np.median(x)
            # choose a so the curve passes through the mean point
            a = max(float(np.mean(y) - c), 1e-12) * float(np.mean(x) + d) ** b
            rows.append(self.encode(np.array([a, b, c, d])))
        return np.array(rows)

    def jacobian(self, x, u):
        a, b, c, d = self.decode(u)
        xd = np.asarray(x, float) + d
        head = a * xd ** -b
        f = head + c
        dd = 10 ** u[3] * np.log(10)  # d d / d u3
        return -np.column_stack([head, -head * np.log(xd), np.ones(len(xd)),
                                 -b * head / xd * dd]) / f[:, None]

    def check(self, x, y):
        if np.any(np.asarray(x) < 0):
            return "needs x >= 0"
        if len(np.unique(x)) < 3:
            return "needs at least 3 distinct x values"
        return super().check(x, y)


@register_law
class JointLaw(Law):
    """``E(N, D) = E + A / N**alpha + B / D**beta`` over two axes (Hoffmann et al. 2022):
    N is model size (parameters), D data (images seen); x is ``(n, 2)`` as ``[N, D]``.

    Fitted as Besiroglu et al. (2024) do: residuals of ``log E`` with ``log f`` in
    log-sum-exp form, searched over ``(log E, log A, log B, alpha, beta)`` from a grid of
    starts, with analytic derivatives.
    """

    name = "joint"
    params = ("E", "A", "B", "alpha", "beta")
    formula = "E + A / N**alpha + B / D**beta"
    inputs = 2
    space = "log"
    decreasing = True

    def f(self, x, theta):
        e, a, b, alpha, beta = theta
        x = np.asarray(x, float)
        return e + a / x[:, 0] ** alpha + b / x[:, 1] ** beta

    def _terms(self, x, u):
        x = np.asarray(x, float)
        le, la, lb, alpha, beta = u
        n = len(x)
        return np.column_stack([la - alpha * np.log(x[:, 0]), lb - beta * np.log(x[:, 1]),
                                np.full(n, le)])

    def log_f(self, x, theta):
        return _logsumexp(self._terms(x, self.encode(theta)))

    def encode(self, theta):
        e, a, b, alpha, beta = theta
        with np.errstate(divide="ignore"):
            return np.array([np.log(e), np.log(a), np.log(b), alpha, beta])

    def decode(self, u):
        return np.array([np.exp(u[0]), np.exp(u[1]), np.exp(u[2]), u[3], u[4]])

    def bounds(self, x=None, y=None):
        return (np.array([-20.0, -20.0, -20.0, 0.0, 0.0]),
                np.array([20.0, 60.0, 60.0, 3.0, 3.0]))

    def starts(self, x, y):
        # the grid of Hoffmann et al. / Besiroglu et al., in the units of the data
        y = np.asarray(y, float)
        le = np.log(y.min()) + np.array([-2.0, -0.5, -0.05])
        grid = itertools.product(le, (0.0, 5.0, 10.0, 15.0, 20.0), (0.0, 5.0, 10.0, 15.0, 20.0),
                                 (0.0, 0.5, 1.0, 1.5), (0.0, 0.5, 1.0, 1.5))
        return np.array(list(grid))

    def initial(self, x, y):
        return self.decode(self.starts(x, y)[0])

    def jacobian(self, x, u):
        x = np.asarray(x, float)
        w = _softmax(self._terms(x, u))  # d log f / d term
        # residual = log y - log f
        return -np.column_stack([w[:, 2], w[:, 0], w[:, 1], -w[:, 0] * np.log(x[:, 0]),
                                 -w[:, 1] * np.log(x[:, 1])])

    def check(self, x, y):
        x = np.asarray(x, float)
        if x.ndim != 2 or x.shape[1] != 2:
            return "needs x as two columns (model size, data)"
        if np.any(x <= 0):
            return "needs N > 0 and D > 0"
        if len(np.unique(x[:, 0])) < 2 or len(np.unique(x[:, 1])) < 2:
            return "needs at least 2 distinct values on each axis"
        return super().check(x, y)
