"""One line format without control codes; a repeating warning once per interval, with its count."""

from __future__ import annotations

import io
import logging
import logging.config

from aiaudit.pipeline.logs import PlainFormatter, RepeatLimit, dict_config, plain


def _record(msg: str, *args: object, level: int = logging.WARNING, name: str = "aiaudit.gateway") -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def test_a_repeating_warning_is_let_through_once_per_interval_and_then_counted():
    now = [100.0]
    limit = RepeatLimit(interval_s=60, clock=lambda: now[0])
    shown = [limit.filter(_record("broker %s:%d down after %dms", "127.0.0.1", 9092, ms)) for ms in range(91)]
    assert shown.count(True) == 1 and shown[0]  # 91 in ten seconds: one line
    now[0] += 61
    later = _record("broker %s:%d down after %dms", "127.0.0.1", 9092, 5)
    assert limit.filter(later)
    assert later.getMessage() == "broker 127.0.0.1:9092 down after 5ms (repeated 90 more time(s) in the last 61 s)"
    assert not limit.filter(_record("broker %s:%d down after %dms", "127.0.0.1", 9092, 6))


def test_one_warning_per_request_during_an_outage_is_one_line_a_minute():
    import uuid

    limit = RepeatLimit(interval_s=60, clock=lambda: 0.0)
    shown = [limit.filter(_record("event %s (seq %d) was not recorded: %s", str(uuid.uuid4()), n, "Local: Message timed out"))
             for n in range(91)]
    assert shown.count(True) == 1
    assert limit.filter(_record("event %s (seq %d) was not recorded: %s", str(uuid.uuid4()), 1, "Broker: Not enough replicas"))


def test_different_warnings_other_loggers_and_info_lines_are_not_held_back():
    limit = RepeatLimit(interval_s=60, clock=lambda: 0.0)
    assert limit.filter(_record("policy reload failed"))
    assert limit.filter(_record("vendor openai unreachable"))
    assert limit.filter(_record("policy reload failed", name="aiaudit.score"))
    assert not limit.filter(_record("policy reload failed"))
    assert all(limit.filter(_record("chained 10", level=logging.INFO)) for _ in range(5))


def test_control_codes_never_reach_a_log_line():
    assert plain("\x1b[31mERROR\x1b[0m bell\x07 cr\r ok\ttab\nnext") == "ERROR bell cr ok\ttab\nnext"
    line = PlainFormatter().format(_record("finding for %s", "\x1b]0;pwned\x07mallory\x1b[2J"))
    assert "\x1b" not in line and "\x07" not in line and line.endswith("finding for 0;pwnedmallory")


def test_the_faust_logging_config_uses_the_same_format_and_limit(capsys):
    logging.config.dictConfig(dict_config("WARN"))
    try:
        log = logging.getLogger("faust.test")
        for _ in range(3):
            log.warning("\x1b[33mdestination refused\x1b[0m")
        log.info("not shown at WARN")
        err = capsys.readouterr().err
        assert err.count("destination refused") == 1 and "\x1b" not in err and "not shown" not in err
        assert " WARNING faust.test: destination refused" in err
    finally:
        logging.getLogger().handlers.clear()
        logging.getLogger().addHandler(logging.StreamHandler(io.StringIO()))
        logging.getLogger().handlers.clear()
