"""The spectrahedron {Theta = U U^T : Theta PSD, trace 1, rank r} as a Riemannian quotient.

A point is U [d, r] with ||U||_F = 1 (the unit sphere of R^{d x r}), taken modulo U ~ U O for
orthogonal O; the metric is the Euclidean one on U. These are the operations of Manopt's
``spectrahedronfactory`` (Journee, Bach, Absil & Sepulchre, SIAM J. Optim. 2010):

    tangent (sphere):     <U, xi> = 0
    horizontal space:     U^T xi symmetric (orthogonal to the orbit directions U Omega, Omega skew)
    projection:           eta <- eta - <eta, U> U;
                          solve (U^T U) Om + Om (U^T U) = U^T eta - eta^T U; return eta - U Om
    Riemannian gradient:  egrad - <egrad, U> U (egrad of an invariant cost is already horizontal)
    Riemannian Hessian:   H = ehess - <egrad, U> xi - (<ehess, U> + <xi, egrad>) U,
                          H <- H - <H, U> U, then the horizontal projection
    retraction:           R_U(xi) = (U + xi) / ||U + xi||_F
    transport:            projection onto the tangent space at the new point

The Sylvester equation is solved in the eigenbasis of U^T U = Q diag(l) Q^T, Om = Q [Q^T A Q /
(l_a + l_b)] Q^T, as Manopt's ``sylvester_symmetric`` does; where l_a + l_b is zero (rank-deficient
U) that entry is set to 0, the least-norm solution, so the projection stays defined there.
"""

from __future__ import annotations

import math

import numpy as np


class Spectrahedron:
    """The fixed-rank spectrahedron of d x d trace-one PSD matrices of rank r, as U [d, r].

    Args:
        d: number of rows of U (the size of Theta).
        r: the rank, number of columns of U.

    Example:

        manifold = Spectrahedron(100, 3)
        U = manifold.random_point(np.random.default_rng(0))     # [100, 3], ||U||_F = 1
        xi = manifold.random_tangent(U, np.random.default_rng(1))
        U_next = manifold.retraction(U, 0.1 * xi)
    """

    def __init__(self, d: int, r: int):
        for value, name in ((d, "d"), (r, "r")):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"`{name}` must be an integer >= 1. Received: {name}={value!r}")
        self.d, self.r = int(d), int(r)

    @property
    def dim(self) -> int:
        """Dimension of the quotient: d r - 1 (sphere) - r (r - 1) / 2 (orbit of O(r))."""
        return self.d * self.r - 1 - self.r * (self.r - 1) // 2

    @property
    def typical_distance(self) -> float:
        """pi / 2: the angle from a point to an orthogonal one on the unit sphere."""
        return math.pi / 2

    def inner(self, U: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
        """<a, b> = trace(a^T b), for tangent vectors a, b [d, r] at U."""
        return float(np.vdot(a, b))

    def norm(self, U: np.ndarray, a: np.ndarray) -> float:
        """||a||_F for a tangent vector a [d, r] at U."""
        return float(np.linalg.norm(a))

    def proj(self, U: np.ndarray, eta: np.ndarray) -> np.ndarray:
        """Projection of an ambient eta [d, r] onto the horizontal space at U: [d, r]."""
        eta = eta - np.vdot(eta, U) * U
        gram = U.T @ U
        omega = solve_symmetric_sylvester(gram, U.T @ eta - eta.T @ U)
        return eta - U @ omega

    def egrad2rgrad(self, U: np.ndarray, egrad: np.ndarray) -> np.ndarray:
        """Riemannian gradient egrad - <egrad, U> U, from the Euclidean one [d, r]."""
        return egrad - np.vdot(egrad, U) * U

    def ehess2rhess(self, U: np.ndarray, egrad: np.ndarray, ehess: np.ndarray,
                    xi: np.ndarray) -> np.ndarray:
        """Riemannian Hessian along the horizontal xi, from egrad and ehess[xi] (all [d, r])."""
        hess = ehess - np.vdot(egrad, U) * xi - (np.vdot(ehess, U) + np.vdot(xi, egrad)) * U
        hess = hess - np.vdot(hess, U) * U
        return self.proj(U, hess)

    def retraction(self, U: np.ndarray, xi: np.ndarray) -> np.ndarray:
        """R_U(xi) = (U + xi) / ||U + xi||_F: [d, r]."""
        moved = U + xi
        return moved / np.linalg.norm(moved)

    def transport(self, U_old: np.ndarray, U_new: np.ndarray, xi: np.ndarray) -> np.ndarray:
        """Moves a tangent vector at U_old to U_new by projecting it there: [d, r]."""
        return self.proj(U_new, xi)

    def random_point(self, rng: np.random.Generator) -> np.ndarray:
        """A Gaussian d x r matrix scaled to unit Frobenius norm."""
        U = rng.standard_normal((self.d, self.r))
        return U / np.linalg.norm(U)

    def random_tangent(self, U: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A unit-norm horizontal vector at U: a projected Gaussian [d, r]."""
        xi = self.proj(U, rng.standard_normal((self.d, self.r)))
        return xi / np.linalg.norm(xi)

    def zero_vector(self, U: np.ndarray) -> np.ndarray:
        """The zero tangent vector [d, r]."""
        return np.zeros_like(U)


def solve_symmetric_sylvester(gram: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Solves gram Om + Om gram = rhs for symmetric PSD gram [r, r] (least-norm if singular).

    Equals ``scipy.linalg.solve_sylvester(gram, gram, rhs)`` when gram is nonsingular.
    """
    eigenvalues, Q = np.linalg.eigh(gram)
    denominator = eigenvalues[:, None] + eigenvalues[None, :]
    # Pairs with l_a + l_b at rounding level carry no information: least-norm solution there.
    floor = gram.shape[0] * np.finfo(float).eps * max(float(eigenvalues[-1]), 0.0)
    safe = np.where(denominator > floor, denominator, 1.0)
    rotated = np.where(denominator > floor, (Q.T @ rhs @ Q) / safe, 0.0)
    return Q @ rotated @ Q.T
