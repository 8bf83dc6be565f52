"""aiaudit: every AI request becomes a signed, hash-chained, queryable record.

The data path, one step per line, in order:

0. gateway pipeline/gateway/classify.py, policy.py, identity.py, event.py (pure) -> gateway/app.py,
           upstream.py, evidence.py (the policy-enforcing LLM proxy; emits through the SDK)
1. emit    pipeline/emit/contract.py (event contract, framing)   -> emit/producer.py (Emitter SDK)
2. chain   pipeline/chain/record.py (record v1: the signed bytes) + chain/step.py -> chain/worker.py
3. sink    pipeline/sink/rows.py (record -> typed row)            -> sink/worker.py, store.py
4. score   detectors/ + pipeline/score/step.py, score/ocsf.py     -> score/app.py (Faust)
5. query   pipeline/query/filters.py, query/alerts.py             -> query/api.py
6. verify  pipeline/verify/rules.py, verify/reconcile.py          -> verify/sources.py, verify/run.py

Settings: pipeline/settings.py. Errors: pipeline/errors.py. Command line: pipeline/cli.py.
"""
