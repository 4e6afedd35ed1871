"""Turns settings into the router's parts: which identity checks, policy and catalog sources,
and audit sinks a replica runs with. Kept apart from `app.py` so that file shows how the parts
fit together, not how each is configured; implementations are imported only when used.
"""

from __future__ import annotations

import logging

from router.catalog.sources.base import CatalogSource
from router.catalog.sources.registry import RegistrySource
from router.guard.identity import Authenticator, KeyStore
from router.guard.policy_sources import FilePolicySource, KeyPolicySource, PolicySource
from router.observe.audit import FileSink, NatsSink, Publisher, Sink, StreamSink
from router.observe.metrics import Metrics
from router.settings import RouterSettings

log = logging.getLogger("toolmesh.router")


def authenticator_from(settings: RouterSettings) -> Authenticator:
    s = settings
    verifier = None
    if s.auth_jwt_secret or s.auth_jwt_public_key_file or s.auth_jwks_url:
        from router.guard.tokens import JwtConfig, JwtVerifier

        public_key = s.auth_jwt_public_key_file.read_text() if s.auth_jwt_public_key_file else None
        verifier = JwtVerifier(
            JwtConfig(
                issuer=s.auth_jwt_issuer,
                audience=s.auth_jwt_audience,
                algorithms=s.auth_jwt_algorithms,
                secret=s.auth_jwt_secret.get_secret_value() if s.auth_jwt_secret else None,
                public_key=public_key,
                jwks_url=s.auth_jwks_url,
                jwks_cache_seconds=s.auth_jwks_cache_seconds,
                agent_claim=s.auth_agent_claim,
                groups_claim=s.auth_groups_claim,
            )
        )
    return Authenticator(
        anonymous=s.auth_anonymous,
        keys=KeyStore(s.auth_keys_file) if s.auth_keys_file else None,
        jwt=verifier,
        resource_url=s.auth_resource_url,
        authorization_servers=s.auth_authorization_servers,
    )


def policy_sources_from(settings: RouterSettings) -> list[PolicySource]:
    sources: list[PolicySource] = []
    if settings.policy_file is not None:
        sources.append(FilePolicySource(settings.policy_file, settings.policy_poll_interval))
    if settings.policy_consul_key is not None:
        from router.kv.consul import ConsulKV

        sources.append(KeyPolicySource(ConsulKV(settings.policy_consul_url), settings.policy_consul_key))
    if settings.policy_etcd_key is not None:
        from router.kv.etcd import EtcdKV

        sources.append(KeyPolicySource(EtcdKV(settings.policy_etcd_endpoint), settings.policy_etcd_key))
    return sources


def audit_sinks_from(settings: RouterSettings, publisher: Publisher | None) -> list[Sink]:
    sinks: list[Sink] = []
    for name in dict.fromkeys(settings.audit_sink):
        if name == "stdout":
            sinks.append(StreamSink())
        elif name == "file" and settings.audit_file is not None:
            sinks.append(FileSink(settings.audit_file))
        elif name == "nats":
            if publisher is None:
                log.warning("audit sink `nats` needs a NATS connection; set `nats` to use it")
            else:
                sinks.append(NatsSink(publisher, settings.audit_nats_subject))
    return sinks


def registry_sources_from(settings: RouterSettings, metrics: Metrics) -> list[CatalogSource]:
    """A source per registry named in the settings; implementations are imported only if used."""
    sources: list[CatalogSource] = []
    if settings.consul:
        from router.catalog.sources.consul import ConsulRegistry

        url, service, wait = settings.consul, settings.consul_service, settings.registry_wait
        sources.append(
            RegistrySource(
                lambda: ConsulRegistry(url, service=service, wait=wait),
                "consul",
                backoff_max=settings.registry_backoff_max,
                on_health=metrics.source_up.labels("consul").set,
            )
        )
    if settings.etcd:
        from router.catalog.sources.etcd import EtcdRegistry

        etcd_url, prefix = settings.etcd, settings.etcd_prefix
        sources.append(
            RegistrySource(
                lambda: EtcdRegistry(etcd_url, prefix=prefix),
                "etcd",
                backoff_max=settings.registry_backoff_max,
                on_health=metrics.source_up.labels("etcd").set,
            )
        )
    return sources
