"""The device side: the sync session, its view of the cloud, intents, the offline queue.

Private: everything here is re-exported through `shadowsync`; the store contract is public as
`shadowsync.stores.Store`.
"""
