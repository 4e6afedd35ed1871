"""The official MCP conformance suite, run against our own conformance backend (and, later, the router)."""
