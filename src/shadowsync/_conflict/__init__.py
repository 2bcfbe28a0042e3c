"""The conflict engine: clocks, version checks, stamped state, resolution policy, the merge.

Private: everything here is re-exported through `shadowsync` and `shadowsync.strategies`.
"""
