"""Everything replicas share over NATS, one module per concept; `assemble.py` builds it.

Nothing outside this package imports it: `router/seams.py` names `assemble` in its
`SHARED_STATE` table, imported only when `--nats` is set, so a single replica never loads it
(nor `nats`). It sits above the layers whose interfaces it implements (`state/` `SessionStore`
and `ClientBus`, `guard/` `RateStore`, `upstream/` `HintBus`, `server/events.py` `RemoteEvents`,
`relay/` `ForwardParked`, `observe/audit.py` `Sink`); none of them imports it.
"""
