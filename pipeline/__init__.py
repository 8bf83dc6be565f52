"""aiaudit: every AI request becomes a signed, hash-chained, queryable record.

The data path, one step per line, in order (pure logic -> the I/O edge that runs it):

1. contract pipeline/contract/schema.py, codec.py (the event, its framing), signature.py (emitter
            signatures)                                                    -> contract/registry.py, emitter_keys.py
2. emit     pipeline/emit/synthetic.py                                     -> emit/producer.py (Emitter SDK)
3. chain    pipeline/chain/record.py (record v1: the signed bytes) + step.py -> chain/worker.py
4. store    pipeline/store/evidence.py, dead_letters.py, alerts.py, policies.py, content.py, filters.py
                                                                           -> store/client.py (ClickHouse)
5. sink     pipeline/sink/rows.py (topic -> table rows)                    -> sink/worker.py
6. query    pipeline/query/api.py, alerts.py, export.py (through store/)
7. verify   pipeline/verify/rules.py, reconcile.py, run.py                 -> verify/sources.py
8. score    detectors/ + pipeline/score/step.py, ocsf.py                   -> score/worker.py, score/models.py
   gateway  pipeline/gateway/wire.py, classify.py, policy.py, identity.py, event.py
            -> gateway/app.py (HTTP), upstream.py, evidence.py (emits through the SDK): at the edge

Shared: jcs.py (RFC 8785), keys.py (Ed25519 keys, kids, JWKS), errors.py (the error tree), settings.py, names.py,
kafka/config.py (every Kafka client's properties), kafka/io.py. Running the whole: ops/
(supervisor, progress, demo). Command line: cli.py. Dependency rules: tests/unit/test_layers.py.
"""
