"""Scaling laws as named objects: the formula, its parameters and how to solve for them.

A law knows only its own mathematics: ``f(x, theta)``, a starting point, bounds, and when
the data cannot identify it. Everything statistical that is the same for every law
(bootstrap intervals, diagnostics, grouping, robust losses) lives in `analysis.fit`, so a
new law is one small class::

    @register_law
    class PowerLaw(Law):
        name = "power"
        params = ("c", "k", "alpha")
        formula = "c - k * x**-alpha"
        def f(self, x, theta):
            c, k, alpha = theta
            return c - k * np.asarray(x, float) ** -alpha
        def initial(self, x, y):
            return np.array([y.max() + 1.0, y.max() - y.min() + 1.0, 0.3])

Joint laws (accuracy as a function of images *and* model size) set ``inputs = 2`` and
receive ``x`` as an ``(n, 2)`` array.
"""

from __future__ import annotations

import difflib
from typing import ClassVar

import numpy as np
from scipy import optimize


class Law:
    """Base class of a scaling law ``y = f(x; theta)``.

    Subclasses set ``name``, ``params`` and ``formula`` and implement `f`; they override
    `initial` (the iterative solver's start), `bounds`, `check` or `solve` (e.g. with a
    closed form) when they can do better than the generic least-squares defaults.
    """

    name: ClassVar[str] = ""
    params: ClassVar[tuple[str, ...]] = ()
    formula: ClassVar[str] = ""
    inputs: ClassVar[int] = 1
    """How many x columns the law takes (1, or more for joint laws)."""

    def f(self, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """The law's prediction at ``x`` for parameter vector ``theta``."""
        raise NotImplementedError

    def initial(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """A starting point for the iterative solver."""
        return np.zeros(len(self.params))

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper parameter bounds (``scipy.optimize.least_squares`` style)."""
        return np.full(len(self.params), -np.inf), np.full(len(self.params), np.inf)

    def check(self, x: np.ndarray, y: np.ndarray) -> str | None:
        """Why these points cannot identify the law (one line), or None when they can."""
        if len(y) < len(self.params):
            return f"needs at least {len(self.params)} points, has {len(y)}"
        return None

    def solve(self, x: np.ndarray, y: np.ndarray, loss: str = "linear",
              f_scale: float = 1.0) -> np.ndarray:
        """Best-fit parameters. The default is bounded nonlinear least squares, where
        ``loss`` is any of scipy's (``linear``, ``huber``, ``soft_l1``, ``cauchy``, ...)
        so robust fits come for free."""
        lo, hi = self.bounds()
        start = np.clip(np.asarray(self.initial(x, y), float), lo, hi)
        result = optimize.least_squares(lambda t: self.f(x, t) - y, start, bounds=(lo, hi),
                                        loss=loss, f_scale=f_scale)
        return result.x

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


@register_law
class LogLinear(Law):
    """The paper's law: accuracy gains a fixed number of points per 10x more images.

    ``b`` is that number (points per decade of x). Solved in closed form (ordinary least
    squares on log10 x) unless a robust loss is asked for.
    """

    name = "loglinear"
    params = ("a", "b")
    formula = "a + b * log10(x)"

    def f(self, x, theta):
        a, b = theta
        return a + b * np.log10(x)

    def initial(self, x, y):
        return self._ols(x, y)

    def check(self, x, y):
        if np.any(np.asarray(x) <= 0):
            return "needs x > 0 (log10 of x)"
        if len(np.unique(x)) < 2:
            return "needs at least 2 distinct x values"
        return super().check(x, y)

    def solve(self, x, y, loss="linear", f_scale=1.0):
        if loss == "linear":
            return self._ols(x, y)
        return super().solve(x, y, loss=loss, f_scale=f_scale)

    @staticmethod
    def _ols(x, y):
        b, a = np.polyfit(np.log10(x), y, 1)
        return np.array([a, b])
