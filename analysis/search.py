"""The search every law without a closed form is fitted by (`Law.solve`'s default).

Residuals in the law's own space (log space for error laws), a plain or Huber loss, and a
bounded optimiser (``trf`` least squares, or ``L-BFGS-B`` on the mean loss) run from many
starting points, keeping the best. A grid of more starts than ``max_starts`` is screened
first: the loss is evaluated at every grid point (cheap, vectorised over points) and only
the best ``max_starts`` are polished by the optimiser. Its own module, below both the laws
and the fits that use it.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from scipy import optimize

from contract.errors import ConfigError


class Law(Protocol):
    """What the search uses of a law (`analysis.laws.Law` provides all of it): named here,
    so the search sits below the laws instead of importing them."""

    @property
    def name(self) -> str: ...

    def bounds(self, x, y) -> tuple: ...

    def starts(self, x: np.ndarray, y: np.ndarray) -> np.ndarray: ...

    def jacobian(self, x: np.ndarray, u: np.ndarray) -> np.ndarray | None: ...

    def transform(self, y: np.ndarray) -> np.ndarray: ...

    def fitted(self, x: np.ndarray, theta: np.ndarray) -> np.ndarray: ...

    def decode(self, u: np.ndarray) -> np.ndarray: ...


def law_bounds(law: Law, x, y) -> tuple[np.ndarray, np.ndarray]:
    """The law's bounds on its solver-space parameters, as float arrays."""
    lo, hi = law.bounds(x, y)
    return np.asarray(lo, float), np.asarray(hi, float)



def _rho(r: np.ndarray, loss: str, delta: float) -> tuple[np.ndarray, np.ndarray]:
    """Loss per residual and its derivative (for L-BFGS-B)."""
    if loss == "linear":
        return 0.5 * r ** 2, r
    if loss == "huber":
        small = np.abs(r) <= delta
        value = np.where(small, 0.5 * r ** 2, delta * (np.abs(r) - 0.5 * delta))
        return value, np.where(small, r, delta * np.sign(r))
    raise ConfigError(f"loss={loss!r} is not available with method='L-BFGS-B': "
                      "use 'linear' or 'huber' (or method='trf' for scipy's other losses)")


# long by design: one multi-start loop over two optimisers
def minimise(law: Law, x, y, loss: str = "linear", delta: float = 1.0,  # noqa: C901
             method: str | None = None,
             starts: np.ndarray | None = None, max_starts: int = 24, min_agree: int = 3,
             max_steps: int = 300) -> tuple[np.ndarray, dict]:
    """Multi-start bounded search for ``law``'s parameters; returns ``(theta, info)``.

    The objective is the mean over points of ``loss`` applied to the residuals in the
    law's space (``0.5 r**2``, or Huber with threshold ``delta``). ``info`` has the best
    ``objective``, how many ``starts`` were polished (``grid``: how many were screened),
    ``agree`` (the fraction of polished starts that reached the best objective, a
    measure of how well-posed the fit is) and the ``method``. Starts are polished best
    screened first, and the search stops early once ``min_agree`` of at least 8 polished
    starts agree on the best objective; each polish takes at most ``max_steps``
    evaluations (trf) or iterations (L-BFGS-B).
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    if method is None:  # quasi-Newton where the law gives gradients, else least squares
        first = np.atleast_2d(law.starts(x, y) if starts is None else starts)[0]
        analytic = law.jacobian(x, np.asarray(first, float)) is not None
        method = "L-BFGS-B" if analytic and loss in ("linear", "huber") else "trf"
    if method not in ("trf", "L-BFGS-B"):
        raise ConfigError(f"method={method!r} is invalid: use 'trf' or 'L-BFGS-B'")
    if method == "L-BFGS-B":
        _rho(np.zeros(1), loss, delta)  # raises for a loss L-BFGS-B cannot take
    x, y = np.asarray(x, float), np.asarray(y, float)
    z = law.transform(y)
    n = len(z)
    lo, hi = law_bounds(law, x, y)
    span = np.where(np.isfinite(hi - lo), hi - lo, 1.0)
    inner_lo, inner_hi = lo + 1e-9 * span, hi - 1e-9 * span
    grid = np.atleast_2d(law.starts(x, y) if starts is None else starts).astype(float)
    grid = np.clip(grid, inner_lo, inner_hi)

    def residual(u):
        return z - law.fitted(x, law.decode(u))

    def objective(u):  # for screening; scipy's other robust losses screen by least squares
        r = residual(u)
        if not np.all(np.isfinite(r)):
            return np.inf
        return float(np.mean(_rho(r, loss if loss == "huber" else "linear", delta)[0]))

    screened = len(grid)
    if len(grid) > 1:
        scores = np.array([objective(u) for u in grid])
        grid = grid[np.argsort(scores, kind="stable")[:max_starts]]

    def agreeing(values):
        best = min(values)
        return int(np.sum(np.asarray(values) <= best + 1e-4 * abs(best) + 1e-12))

    has_jac = law.jacobian(x, grid[0]) is not None
    ends, values = [], []
    for u0 in grid:
        try:
            if method == "trf":
                jac = (lambda u: law.jacobian(x, u)) if has_jac else "2-point"
                res = optimize.least_squares(residual, u0, jac=jac, bounds=(lo, hi),
                                             loss=loss, f_scale=delta, max_nfev=max_steps)
                value = float(res.cost) / n
            else:
                # L-BFGS-B's stopping test is absolute below 1, and a Huber objective in
                # log units is ~1e-5: optimise it relative to its value at the start
                scale = max(objective(u0), 1e-300) if np.isfinite(objective(u0)) else 1.0

                def fun(u, scale=scale):  # bound now, not at call time
                    r = residual(u)
                    if not np.all(np.isfinite(r)):
                        return np.inf, np.zeros_like(u)
                    value, slope = _rho(r, loss, delta)
                    grad = law.jacobian(x, u).T @ slope / (n * scale) if has_jac else None
                    return float(np.mean(value)) / scale, grad
                options = {"maxiter": max_steps}
                if has_jac:
                    res = optimize.minimize(fun, u0, jac=True, method="L-BFGS-B",
                                            bounds=list(zip(lo, hi)), options=options)
                else:
                    res = optimize.minimize(lambda u: fun(u)[0], u0, method="L-BFGS-B",
                                            bounds=list(zip(lo, hi)), options=options)
                value = float(res.fun) * scale
        except (ValueError, FloatingPointError, np.linalg.LinAlgError):
            continue
        if np.isfinite(value):
            ends.append(res.x)
            values.append(value)
            if len(values) >= 8 and agreeing(values) >= min_agree:
                break
    if not values:
        raise RuntimeError(f"{law.name}: no starting point led to a finite fit")
    best = int(np.argmin(values))
    agree = agreeing(values) / len(values)
    return law.decode(ends[best]), {"objective": values[best], "starts": len(values),
                                    "grid": screened, "agree": agree, "method": method}
