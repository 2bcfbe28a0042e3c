"""Test fakes: the in-memory shadow service and the device/cloud loopback pair.

Private: `shadowsync.testing` is their public face.
"""
