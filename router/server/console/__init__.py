"""The operator's web console at `/console`: server-rendered HTML over the replica's parts, for
admin agents only (`endpoint.py`), rendered by `page.py`, with the last calls from the audit
stream (`recent.py`)."""
