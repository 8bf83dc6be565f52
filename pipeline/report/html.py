"""The report page (pure): one self-contained HTML file from the figures, the report's facts and the
control mapping. Inline styles and SVG only; a Content-Security-Policy that lets the page fetch
nothing; every text from the evidence escaped."""

from __future__ import annotations

from html import escape
from typing import Any

from aiaudit.pipeline.report import svg

SECTIONS = {  # id -> heading, in page order
    "scope": "Scope",
    "period": "The period in figures",
    "integrity": "Integrity",
    "completeness": "Completeness",
    "policy": "Policy",
    "monitoring": "Monitoring",
    "configuration": "Detector configuration and trusted keys",
    "access": "Access to the evidence",
    "erasure": "Retention and erasure",
    "time": "Time source",
    "controls": "Controls",
}
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
STYLE = """
body{font-family:sans-serif;margin:2em auto;max-width:980px;color:#222;line-height:1.4}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:2px solid #1565c0;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f0f4f8}td.n{text-align:right;font-variant-numeric:tabular-nums}
.serves{color:#555;font-size:.9em;margin-top:-.4em}.ok{color:#2e7d32;font-weight:bold}.bad{color:#c62828;font-weight:bold}
.note{background:#fff8e1;border-left:4px solid #f9a825;padding:.4em .8em}.small{font-size:.85em;color:#555}
code{font-size:.9em}
@media print{h2{page-break-after:avoid}svg{max-width:100%}}
"""


def _table(rows: list[list[Any]], head: list[str]) -> str:
    if not rows:
        return '<p class="small">none in the period</p>'
    out = ["<table><tr>", *(f"<th>{escape(h)}</th>" for h in head), "</tr>"]
    for row in rows:
        out.append("<tr>" + "".join(
            f'<td class="n">{v:,}</td>' if isinstance(v, int) and not isinstance(v, bool) else f"<td>{escape(str(v))}</td>"
            for v in row) + "</tr>")
    return "".join(out) + "</table>"


def _counts(counts: dict[str, int], head: str) -> str:
    return _table([[k, v] for k, v in counts.items()], [head, "count"])


def _serves(section: str, controls: dict[str, Any]) -> str:
    names = {i["id"]: i["short"] for i in controls["instruments"]}
    refs = [f"{names[c['instrument']]} {c['ref']}" for c in controls["controls"] if section in c["sections"]]
    return f'<p class="serves">Serves: {escape("; ".join(refs))}</p>' if refs else ""


def render(figures: dict[str, Any], facts: dict[str, Any], controls: dict[str, Any]) -> str:
    """The page. `facts`: period, scope, generated_at, aiaudit version, export name, operator key id."""
    r, integ, comp = figures["requests"], figures["integrity"], figures["completeness"]
    mon, pol, cfg = figures["monitoring"], figures["policy"], figures["configuration"]
    period = f"{facts['since']} to {facts['until']} (UTC, the end excluded)"
    step = figures["plotted_by"]
    scope = facts.get("scope") or {}
    body: dict[str, str] = {}
    body["scope"] = (
        f"<p>Evidence of AI requests routed through aiaudit from {escape(period)}"
        + (f", limited to {escape(', '.join(f'{k} {v}' for k, v in scope.items()))}" if scope else "")
        + ".</p>"
        + _table([[k, v] for k, v in r["by_emitter"].items()], ["emitter (gateway or application)", "requests"])
        + "<h3>What each route kept of the text</h3><p>A record never holds a prompt or a response. A route set to "
          "<em>commitments</em> keeps salted hashes of them (they prove what was said to whoever holds the text, "
          "and reveal nothing); <em>full</em> also keeps the text, sealed under per-person keys that erasure "
          "destroys; <em>none</em> keeps neither. A denied request keeps no commitment unless its route keeps "
          "denied content. The setting is read from the policy bundles loaded in the period (blank when none "
          "was).</p>"
        + _table([[route, r["by_route"].get(route, 0), c.get("with commitments", 0), c.get("without", 0),
                   ", ".join(pol["content_by_route"].get(route, []))]
                  for route, c in r["commitments_by_route"].items()],
                 ["route", "requests", "with commitments", "without", "route's setting"])
        + _counts(r["by_retention_scope"], "retention scope"))
    top = [[i["id"], i["type"], i["requests"], i["denied"], i["sensitive"]] for i in r["top_identities"]]
    body["period"] = (
        f"<p><strong>{r['total']:,}</strong> AI requests by <strong>{r['people']:,}</strong> people and "
        f"<strong>{r['agents']:,}</strong> agents or services.</p>"
        + svg.stacked_columns(r["over_time"], f"Requests per {step} by decision")
        + "<h3>Decisions</h3>" + _counts(r["by_decision"], "decision")
        + "<h3>Data classification of prompts</h3>" + _counts(r["by_classification"], "classification")
        + svg.stacked_rows(r["classification_by_vendor"], ["public", "internal", "confidential", "restricted"],
                           "Prompt classification by vendor")
        + "<h3>Vendors and models</h3>" + _counts(r["by_vendor_model"], "vendor / model")
        + "<h3>People and agents</h3>" + _counts(r["by_actor_type"], "kind of identity")
        + "<h3>Most active identities</h3>"
        + _table(top, ["identity", "kind", "requests", "denied", "confidential or restricted"]))
    keys = [[kid[:16], k["records"], k["first"], k["last"]] for kid, k in integ["keys"].items()]
    body["integrity"] = (
        f"<p>{integ['records_in_period']:,} records in the period on {integ['chains']:,} chain(s), each signed "
        f"(Ed25519) and hash-chained; {integ['checkpoints']:,} signed checkpoint(s) in the export, to which "
        f"{integ['records_in_range_proofs']:,} record(s) are proven included by {integ['range_proofs']:,} range proof(s) of "
        f"whole stretches and {integ['inclusion_proofs']:,} by their own inclusion proof; {integ['chains_witnessed']:,} chain(s) cosigned by "
        f"{len(integ['witnesses'])} witness(es){': ' + escape(', '.join(integ['witnesses'])) if integ['witnesses'] else ''}."
        f" The export behind this report is <code>{escape(facts['export'])}</code>, sealed by the operator key "
        f"<code>{escape(facts['operator_key'])}</code>; <code>aiaudit verify --report DIR</code> checks every "
        "signature and recomputes every figure here from it, without the database.</p>"
        + svg.growth(integ["growth"], integ["checkpoints"], integ["chains_witnessed"],
                     "Records chained in the period (cumulative)")
        + "<h3>Records by kind of evidence</h3>" + _counts(integ["by_kind"], "kind")
        + "<h3>Signing keys in use, and when</h3>" + _table(keys, ["key id", "records", "first", "last"]))
    if comp["checked"]:
        verdict = ('<p class="ok">No record is missing at either edge of the period or between.</p>'
                   if not comp["problems"] else
                   '<p class="bad">' + "<br>".join(escape(p) for p in comp["problems"]) + "</p>")
        rows = [[c["origin"], "none in the period" if c["first_seq"] is None else c["first_seq"],
                 "" if c["last_seq"] is None else c["last_seq"], c["records"], c["before"] or "NOT SHOWN",
                 c["after"] or "NOT SHOWN", c["newest_signed_at"] or "none"] for c in comp["chains"]]
        edges = verdict + _table(rows, ["chain", "first seq", "last seq", "records", "start shown by", "end shown by",
                                        "newest signed time"])
    else:
        edges = f'<p class="note">{escape(comp["why"])}.</p>'
    body["completeness"] = (
        "<p>For each chain the export holds every record from one dated before the period (or the chain's first) "
        "to one dated after it (or the chain's last, under a checkpoint signed after the period): a record "
        "removed at either end or in the middle shows. A chain with records before the period and none in it is "
        "listed too. Every running chain signs a time (a heartbeat) every interval even when it has nothing new, "
        "so a chain whose newest signed time is before the period's end stopped: it is <em>stale</em>, and what it "
        "should have recorded after that may be missing. Only each checkpoint's newest signed time is exported: a "
        "chain that stopped and came back within the period shows no gap here.</p>"
        + edges
        + "<h3>Each emitter's numbering</h3><p>Every emitter numbers its events; numbers between an emitter's "
          "first and last in the period that no record holds are events refused (dead letters, below) or lost "
          "before the chain. Events an emitter numbered after its last chained one cannot be seen here: emitters "
          "do not report their own counts to aiaudit.</p>"
        + _table([[e["emitter"], e["events"], e["first"], e["last"], e["unaccounted"]] for e in comp["emitters"]],
                 ["emitter", "events in the period", "first number", "last number", "numbers on no record"])
        + "<h3>Refused messages (dead letters) by reason</h3>" + _counts(comp["dead_letters_by_reason"], "reason"))
    changes = [[c["policy_id"], c["version"], c["loaded_at"], c["gateway"], "; ".join(c["changed"])[:400]]
               for c in pol["changes"]]
    body["policy"] = (
        "<h3>Policy versions that governed the period's requests</h3>" + _counts(pol["versions_in_force"], "policy version")
        + "<h3>Policy versions loaded in the period</h3>"
        + _table(changes, ["policy", "version", "first loaded", "by gateway", "what changed"])
        + "<p class='small'>A bundle's record names the gateway that loaded it; the person who wrote or approved "
          "the change is not recorded by aiaudit (keep it in your change management).</p>")
    tta = mon["time_to_acknowledge_s"]
    body["monitoring"] = (
        f"<p>{mon['findings']:,} finding(s) raised, {mon['incidents']:,} incident(s), "
        f"{mon['acknowledged']:,} finding(s) acknowledged in the period"
        + (f"; time to acknowledge: median {tta['median']:,} s, longest {tta['max']:,} s" if tta["median"] is not None else "")
        + ".</p>" + svg.stacked_columns(mon["over_time"], f"Findings per {step} by severity")
        + _counts(mon["by_severity"], "severity") + "<h3>Deliveries to analysts</h3>" + _counts(mon["deliveries"], "outcome")
        + "<h3>Status changes (each signed by the analyst)</h3>" + _counts(mon["status_changes"], "status"))
    rules = [[x["version"], x["first_scored_at"], ", ".join(x["off"]) or "none"] for x in cfg["rules"]]
    sets = [[x["key_set"], x["first_used_at"], x["keys"], x["sha256"][:16]] for x in cfg["key_sets"]]
    body["configuration"] = (
        "<h3>Rule configurations first used in the period</h3>"
        + _table(rules, ["rules version", "first scored with", "rules switched off"])
        + "<h3>Emitter and analyst key sets first used in the period</h3>"
        + _table(sets, ["key set", "first checked with", "keys", "sha256"]))
    acc = figures["access"]
    body["access"] = (
        f"<p>{acc['reads']:,} read(s) of the evidence through aiaudit in the period ({acc['refused']:,} refused), each "
        "recorded with who, what and a digest of the result before it was answered. Reads that go around aiaudit "
        "to the database itself are not recorded.</p>"
        + _counts(acc["by_principal"], "principal") + _counts(acc["by_operation"], "operation"))
    body["erasure"] = (
        "<p>Erasure destroys the keys that seal kept content, never a record: every chain still verifies. "
        "Retention expiry does the same. Exports already handed over cannot be recalled (they carry no content).</p>"
        + _counts(figures["erasure"]["by_action"], "erasure record"))
    signed = [[o, s["size"], s["signed_at"] or "none"] for o, s in integ["signed_times"].items()]
    body["time"] = (
        "<p>A request's time is its emitter's clock (the gateway's, or the application's). The chains' checkpoints "
        "carry the log's own signed time, and witnesses sign the time they saw each checkpoint: those bound when "
        "records existed, independently of the emitters.</p>"
        + _table(signed, ["chain", "newest checkpoint size", "signed at (log)"]))
    names = {i["id"]: i["name"] for i in controls["instruments"]}
    crow = [[f"{names[c['instrument']]} {c['ref']}", c["title"],
             ", ".join(SECTIONS[s] for s in c["sections"]), c["evidence"], c["cannot_show"]] for c in controls["controls"]]
    dates = "".join(f"<p class='small'>{escape(i['name'])}: {escape(i['dates'])}</p>" for i in controls["instruments"]
                    if "dates" in i)
    body["controls"] = (f"<p class='small'>Mapping {escape(controls['version'])}. {escape(controls['note'])}</p>" + dates
                        + _table(crow, ["control", "what it asks (paraphrased)", "sections", "evidence here",
                                        "what this report cannot show"]))
    sections = "".join(
        f'<section id="{sid}"><h2>{escape(title)}</h2>{_serves(sid, controls) if sid != "controls" else ""}{body[sid]}</section>'
        for sid, title in SECTIONS.items())
    problems = len(comp["problems"]) if comp["checked"] else None
    summary = (f"<p><strong>{r['total']:,}</strong> AI requests, <strong>{mon['findings']:,}</strong> findings, "
               f"<strong>{integ['records_in_period']:,}</strong> records of evidence in the period. Completeness: "
               + ("<span class='ok'>shown</span>" if problems == 0 else
                  f"<span class='bad'>{problems} problem(s)</span>" if problems else "rests on the store (scoped)")
               + ".</p>")
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            f"<title>AI evidence report {escape(facts['since'][:10])} to {escape(facts['until'][:10])}</title>"
            f"<style>{STYLE}</style></head><body>"
            f"<h1>AI evidence report</h1><p class='small'>{escape(period)}. Generated {escape(facts['generated_at'])} by "
            f"aiaudit {escape(facts['version'])}; control mapping {escape(controls['version'])}.</p>"
            f'<section id="summary">{summary}</section>{sections}</body></html>')
