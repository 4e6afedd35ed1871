# The example MCP servers (examples/servers/), with toolmesh for the registrar's stdio bridge.
# The servers are written with the `mcp` SDK, which toolmesh itself does not need at run time,
# so it is installed here explicitly (pinned to the version the tests use).
FROM python:3.12.7-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY router ./router
COPY registrar ./registrar
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.12.7-slim-bookworm
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl "mcp==2.3.0" && rm -rf /wheels \
    && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin toolmesh
WORKDIR /srv
COPY examples/servers ./examples/servers
USER toolmesh
ENV PYTHONUNBUFFERED=1
EXPOSE 8000
CMD ["python", "examples/servers/notes.py", "--transport=streamable-http", "--host=0.0.0.0", "--port=8000"]
