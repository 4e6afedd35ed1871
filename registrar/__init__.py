"""toolmesh registrar: the sidecar that registers an MCP server into Consul or etcd.

Not built yet (issue 4). It will write `router.catalog.record.BackendRecord`, the same record the
router's catalog sources read.
"""
