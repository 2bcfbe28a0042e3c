"""The audit trail's implementation: records and the log. `shadowsync.audit` is its face."""
