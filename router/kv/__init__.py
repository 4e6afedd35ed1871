"""The key-value client layer shared by everything that talks to Consul or etcd.

The registry (`catalog/sources/consul.py`, `etcd.py`) and the guard's policy sources
(`guard/policy_sources.py`) both read, write and watch keys in the same two stores. One client per
store lives here (`consul.py`, `etcd.py`) behind one small interface (`base.py` `KeyValueStore`):
connecting, timeouts, translating the libraries' errors, and watching without losing a change.
What each caller stores under which key stays with the caller.
"""
