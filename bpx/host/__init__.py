"""The host boundary: the only place where bpx uses NumPy and touches files.

``arrays``: host data in (``as_host_array``) and device arrays out (``to_host``); ``init``: the
seeded host initialisers and batch orders (same seed, same numbers on every backend);
``files``: atomic writes.
"""
