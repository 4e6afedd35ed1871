"""toolmesh router: one MCP Streamable HTTP endpoint over many MCP servers."""

__version__ = "0.1.0"
