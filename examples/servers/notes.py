"""Example MCP server (stdio, or Streamable HTTP with `--transport streamable-http`): a notebook in memory.

Tools to add, list and search notes, each note readable as a resource, and a prompt that asks for
a summary. Run by the embedded default's catalog (examples/catalog.json).
"""

from __future__ import annotations

from mcp.server import MCPServer

app = MCPServer("notes", instructions="Keep short notes during a conversation.")
NOTES: dict[int, str] = {1: "toolmesh routes many MCP servers behind one endpoint."}


@app.tool()
def add_note(text: str) -> str:
    """Store a note and return its id."""
    note_id = max(NOTES, default=0) + 1
    NOTES[note_id] = text
    return f"note {note_id} saved"


@app.tool()
def list_notes() -> list[str]:
    """Every note, oldest first, as 'id: text'."""
    return [f"{note_id}: {text}" for note_id, text in sorted(NOTES.items())]


@app.tool()
def search_notes(word: str) -> list[str]:
    """Notes that contain `word` (case-insensitive)."""
    return [text for text in NOTES.values() if word.lower() in text.lower()]


@app.resource("notes://note/{note_id}")
def read_note(note_id: str) -> str:
    """One note by id."""
    return NOTES.get(int(note_id), "no such note")


@app.prompt()
def summarize_notes() -> str:
    """Ask the model to summarize every note."""
    return "Summarize these notes:\n" + "\n".join(NOTES.values())


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="The notes example MCP server (stdio by default).")
    parser.add_argument("--transport", choices=["stdio", "streamable-http"], default="stdio")
    parser.add_argument("--host", default="127.0.0.1", help="listen address for streamable-http")
    parser.add_argument("--port", type=int, default=8000, help="listen port for streamable-http")
    options = parser.parse_args()
    if options.transport == "stdio":
        app.run()
    else:
        app.run("streamable-http", host=options.host, port=options.port)
