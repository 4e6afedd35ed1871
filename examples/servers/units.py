"""Example MCP server (stdio): unit conversions, with read-only tool annotations."""

from __future__ import annotations

from mcp.server import MCPServer
from mcp.types import ToolAnnotations

app = MCPServer("units", instructions="Convert between common units.")
READ_ONLY = ToolAnnotations(readOnlyHint=True, idempotentHint=True)
LENGTH_IN_METRES = {
    "mm": 0.001,
    "cm": 0.01,
    "m": 1.0,
    "km": 1000.0,
    "in": 0.0254,
    "ft": 0.3048,
    "mi": 1609.344,
}


@app.tool(annotations=READ_ONLY)
def convert_length(value: float, from_unit: str, to_unit: str) -> float:
    """Convert a length between mm, cm, m, km, in, ft and mi."""
    for unit in (from_unit, to_unit):
        if unit not in LENGTH_IN_METRES:
            raise ValueError(f"unknown unit {unit!r}; use one of {', '.join(LENGTH_IN_METRES)}")
    return value * LENGTH_IN_METRES[from_unit] / LENGTH_IN_METRES[to_unit]


@app.tool(annotations=READ_ONLY)
def celsius_to_fahrenheit(celsius: float) -> float:
    """Convert degrees Celsius to Fahrenheit."""
    return celsius * 9 / 5 + 32


@app.resource("units://lengths")
def lengths() -> str:
    """The length units this server knows, with their size in metres."""
    return "\n".join(f"{unit} = {metres} m" for unit, metres in LENGTH_IN_METRES.items())


if __name__ == "__main__":
    app.run()
