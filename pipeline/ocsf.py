"""The one OCSF version every event aiaudit sends is written to and validated against: request
events (query/ocsf.py), Detection and Incident Findings and the paging digest (score/ocsf.py,
deliver/pages.py). The newest version the package registries ship a schema of (the
ocsf-json-schema package); the tests validate every kind against it."""

OCSF_VERSION = "1.8.0"
PRODUCT = {"name": "aiaudit", "vendor_name": "aiaudit"}
# Findings name the identity behind them as `actor`, which OCSF's Detection and Incident Finding
# classes have through the host profile; Incident Finding needs an assignee or assignee group: the
# security operations team its pages go to.
FINDING_PROFILES = ["host"]
INCIDENT_PROFILES = ["host", "incident"]
ASSIGNEE_GROUP = {"name": "security operations", "desc": "the destinations aiaudit's delivery agent pages"}
