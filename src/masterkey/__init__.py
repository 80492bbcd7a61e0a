"""masterkey: what depthwise-separable CNNs learn in their spatial filters.

Shared layers: :mod:`.core` (errors, I/O, tables, config, rule glue), :mod:`.kernels`,
:mod:`.nets`, :mod:`.data`, :mod:`.training`, :mod:`.plotting`.  Stages and studies above them:
:mod:`.scalespace` ([B]), :mod:`.clustering` ([A], [Q]), :mod:`.replacement` ([B], [Q]).  The
science is written down in docs/methods.md; the README maps every figure and table of the papers
to its workflow target.

References
----------
[A] Z. Babaiee, P. M. Kiasari, D. Rus, R. Grosu. Unveiling the Unseen: Identifiable Clusters
    in Trained Depthwise Convolutional Kernels. ICLR 2024 (arXiv:2401.14469).
[Q] Z. Babaiee, P. M. Kiasari, D. Rus, R. Grosu. The Quest for Universal Master Key Filters in
    DS-CNNs. NeurIPS 2025 (arXiv:2509.11711).
[B] T. Lindeberg, Z. Babaiee, P. M. Kiasari. Modelling and analysis of the 8 filters from the
    "master key filters hypothesis" for depthwise-separable deep networks in relation to idealized
    receptive fields based on scale-space theory. arXiv:2509.12746; J. Math. Imaging Vis. 68(3), 2026.
[C] H. Leterme, K. Polisano, V. Perrier, K. Alahari. On the Shift Invariance of Max Pooling
    Feature Maps in Convolutional Neural Networks (arXiv:2209.11740).
[D] J. Grabinski, J. Keuper, M. Keuper. As large as it gets: Studying Infinitely Large
    Convolutions via Neural Implicit Functions in the Fourier Domain. TMLR 2024 (arXiv:2307.10001).

Importing the package from a rule script run by Snakemake first installs the hook that sends
errors raised before :func:`masterkey.core.rules.run_rule` (e.g. while importing) to the rule's
log (:mod:`._rulelog`); elsewhere it does nothing.
"""

from ._rulelog import install as _install_rule_log

_install_rule_log()

__version__ = "0.1.0"
__all__ = ["__version__"]
