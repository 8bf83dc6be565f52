"""Anomaly detection (ISO 27001 A.8.16) over chained AI-request events.

Importable without Kafka, Faust or ClickHouse, so models can be trained and studied in a
notebook: `features` turns events into a fixed-order vector (content features carried in the
event, behaviour from per-identity state), `model` trains and scores an IsolationForest and
stores it as a hashed artifact, `traffic` generates labelled traffic, `evaluate` compares the
model with a per-identity z-score baseline.
"""
