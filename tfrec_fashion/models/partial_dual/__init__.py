"""Partial Dual: squared-trace-norm matrix completion by Riemannian optimisation of its partial
dual (Jawanpuria & Mishra, ICML 2018, ref [5] of PSA-Net; PSA-Net section 3.1.1 uses it for
customer embeddings). Pure NumPy / SciPy: importing it never loads TensorFlow.

Convention. Y is d x T with rows = customers (users) and columns = items. The observed set Omega
is the stored entries of a ``scipy.sparse`` matrix (``PartialDual.fit``,
``PartialDualProblem.from_sparse``; an explicitly stored 0 is an observed 0, duplicates are summed)
or explicit ``rows, cols, values, shape`` arrays (``PartialDualProblem``). The problem is

    P(W) = C/2 ||P_Omega(W - Y)||_F^2 + 1/2 ||W||_*^2

which is half the paper's lambda L(Y, W) + ||W||_*^2 with L the sum of squares on Omega and
C = lambda (for L = 1/2 sum of squares, C = lambda / 2; for a mean over Omega,
C = lambda / |Omega|). Values are used as given: centring is the caller's job.

Files, in reading order:

- ``problem.py``: ``PartialDualProblem``: the inner closed form (batched Woodbury solves), the
  outer cost g(U), its gradient and Hessian-vector product, the duality-gap ``Certificate``,
  the primal value, balanced factors.
- ``spectrahedron.py``: ``Spectrahedron``: the manifold {U U^T : trace 1, rank r} as Manopt's
  ``spectrahedronfactory``.
- ``solvers.py``: ``trust_regions`` and ``conjugate_gradient`` on it, stopping on the certified
  gap; ``IterationRecord``, ``SolverResult``.
- ``estimator.py``: ``PartialDual``, the user-facing fit / predict with rank increase.
- ``fold_in.py``: ``FoldIn``, a new customer's embedding from their votes given the fitted item
  factors: the partial dual's inner problem for one new row, in closed form.
- ``fold_in_graph.py``: ``FoldInGraph``, the same in TensorFlow ops for a served graph; the only
  file here that imports TensorFlow, and this package's ``__init__`` does not import it.

May import: numpy, scipy; TensorFlow in ``fold_in_graph.py`` only (importing the package never
loads it). Never imports data loaders, training, export or serving.
"""

from tfrec_fashion.models.partial_dual.estimator import PartialDual
from tfrec_fashion.models.partial_dual.fold_in import FoldIn
from tfrec_fashion.models.partial_dual.problem import Certificate, PartialDualProblem
from tfrec_fashion.models.partial_dual.solvers import (
    IterationRecord,
    SolverResult,
    conjugate_gradient,
    trust_regions,
)
from tfrec_fashion.models.partial_dual.spectrahedron import Spectrahedron

__all__ = [
    "Certificate",
    "FoldIn",
    "IterationRecord",
    "PartialDual",
    "PartialDualProblem",
    "SolverResult",
    "Spectrahedron",
    "conjugate_gradient",
    "trust_regions",
]
