"""`aiaudit gateway keygen` and `check-policy`: a usable key entry; a bad file is one clear line and exit 2."""

from __future__ import annotations

import json

from aiaudit.pipeline.cli import main
from aiaudit.pipeline.gateway.identity import ApiKeyEntry, ApiKeys
from tests.unit.gateway.test_policy import BUNDLE


def test_keygen_prints_the_key_once_and_an_entry_that_authenticates_it(capsys):
    assert main(["gateway", "keygen", "--id", "agent:bot", "--role", "ops", "--type", "agent",
                 "--on-behalf-of", "bob@acme"]) == 0
    out, err = capsys.readouterr()
    entry = json.loads(out.strip()[2:])
    key = next(w for w in err.split() if w.startswith("aiak_"))
    assert key not in out  # the stored entry holds only the hash
    principal = ApiKeys([ApiKeyEntry(**entry)]).authenticate(key)
    assert (principal.id, principal.type, principal.on_behalf_of) == ("agent:bot", "agent", "bob@acme")


def test_check_policy_prints_the_version_or_one_error_line(tmp_path, capsys):
    good = tmp_path / "policy.yaml"
    good.write_text(BUNDLE)
    assert main(["gateway", "check-policy", "--file", str(good)]) == 0
    assert "version 2026.11.0+sha256." in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text(BUNDLE.replace("max_level: internal", "max_level: top-secret"))
    assert main(["gateway", "check-policy", "--file", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("aiaudit: error:") and "vendors.openai.max_level" in err and "\n" not in err
    assert main(["gateway", "check-policy", "--file", str(tmp_path / "missing.yaml")]) == 2
    assert "No such file" in capsys.readouterr().err
