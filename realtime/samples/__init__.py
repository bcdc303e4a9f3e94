"""Sample media for the demo and the benchmarks: clips made from photos that ship with scikit-image.

Nothing in the serving path imports this package; only the commands that need a clip (``rtv demo``, ``rtv bench``,
``rtv batch bench``) and the tests do.
"""
