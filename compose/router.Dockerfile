# The toolmesh image: the router and the registrar, built from this repository (context: the repo
# root). `docker compose` builds it; by hand: docker build -f compose/router.Dockerfile -t toolmesh .
FROM python:3.12.7-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY router ./router
COPY registrar ./registrar
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.12.7-slim-bookworm
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
    && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin toolmesh
USER toolmesh
ENV PYTHONUNBUFFERED=1
EXPOSE 8080
ENTRYPOINT ["toolmesh"]
CMD ["router", "--host=0.0.0.0", "--port=8080"]
