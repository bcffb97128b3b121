"""Federation: hospital nodes and a hub exchanging signed studies and signed, protected results.

- `keys`: Ed25519 key pairs, key files (private 0600), key ids and trust lists.
- `envelope`: the canonical, signed envelope a hub sends and the signed result a node returns.
- `node`: the node service (verify, check approvals, run, protect, sign).
- `hub`: fan-out to the nodes with timeouts and retries; `merge`: combining released results.
"""
