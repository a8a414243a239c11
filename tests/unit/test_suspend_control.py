"""The control socket's suspend and resume commands (runtime.revisions.SuspendControl)."""

from __future__ import annotations

from types import SimpleNamespace

from reconciler.runtime.revisions import SuspendControl


class Consumer:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None]] = []

    def suspend(self, instance: str | None = None) -> None:
        self.calls.append(("suspend", instance))

    def resume(self, instance: str | None = None) -> None:
        self.calls.append(("resume", instance))

    def status(self) -> SimpleNamespace:
        return SimpleNamespace(suspended=True, suspended_instances=("web",), pending=None)


def test_suspend_and_resume_reach_the_consumer_and_answer_what_is_suspended() -> None:
    consumer = Consumer()
    control = SuspendControl(consumer, lambda: ["web", "db"])  # type: ignore[arg-type]
    answer = control.handle({"command": "suspend", "instance": "web"})
    assert answer == {
        "ok": True,
        "suspended": True,
        "suspended_instances": ["web"],
        "pending": None,
    }
    control.handle({"command": "resume", "instance": None})
    assert consumer.calls == [("suspend", "web"), ("resume", None)]


def test_an_unknown_command_or_instance_is_refused_and_changes_nothing() -> None:
    consumer = Consumer()
    control = SuspendControl(consumer, lambda: ["web", "db"])  # type: ignore[arg-type]
    assert control.handle({"command": "pause"}) == {
        "ok": False,
        "error": "unknown command 'pause'",
    }
    assert control.handle({"command": ["suspend"]}) == {
        "ok": False,
        "error": "unknown command ['suspend']",
    }
    assert control.handle({"command": "suspend", "instance": "www"}) == {
        "ok": False,
        "error": "no instance 'www' here (instances: db, web)",
    }
    assert consumer.calls == []
