"""In-order acknowledgement: work that ends out of order is acknowledged in offset order."""

from aiaudit.pipeline.deliver.acks import InOrderAcks


class Msg:
    def __init__(self, log: list, name: str) -> None:
        self.log, self.name = log, name

    def ack(self) -> bool:
        self.log.append(self.name)
        return True


def test_a_later_message_done_first_waits_for_the_earlier_one():
    acked: list[str] = []
    acks = InOrderAcks()
    t10 = acks.taken("p0", Msg(acked, "p0/10"))
    t11 = acks.taken("p0", Msg(acked, "p0/11"))
    t12 = acks.taken("p0", Msg(acked, "p0/12"))
    u5 = acks.taken("p1", Msg(acked, "p1/5"))
    assert acks.done("p0", t11) == 0 and acks.done("p0", t12) == 0  # 10 is still in work: nothing yet
    assert acks.done("p1", u5) == 1  # another partition's line is its own
    assert acked == ["p1/5"] and acks.outstanding() == 3
    assert acks.done("p0", t10) == 3
    assert acked == ["p1/5", "p0/10", "p0/11", "p0/12"] and acks.outstanding() == 0


def test_a_message_never_done_holds_every_later_ack():
    acked: list[str] = []
    acks = InOrderAcks()
    acks.taken("p0", Msg(acked, "a"))
    for i in range(5):
        acks.done("p0", acks.taken("p0", Msg(acked, str(i))))
    assert acked == [] and acks.outstanding() == 6
