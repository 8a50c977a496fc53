"""What a doctor run returns (`Diagnosis` of `Problem`s and `Note`s) and the small helpers every check
shares: a guarded run, one-line error text, the not-checkable finding and the who-needs text."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Finding:
    """One line of the diagnosis: which check (`bigquery.table`, `pubsub.iam`, ...) and what it found."""

    check: str
    message: str

    def __str__(self) -> str:
        return f"{self.check}: {self.message}"


class Problem(Finding):
    """Something that stops a process from working: what, where, expected vs found, what to do."""


class Note(Finding):
    """A fact worth knowing that is not a problem (not created yet, not checkable here)."""


@dataclass
class Diagnosis:
    """Problems, notes, and what was found in order (for the "ok" summary)."""

    problems: list[Problem] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, check: str, message: str) -> None:
        self.problems.append(Problem(check, message))

    def note(self, check: str, message: str) -> None:
        self.notes.append(Note(check, message))

    def summary(self) -> str:
        """'ok: ...' or 'N problem(s)', one line."""
        if self.problems:
            return f"{len(self.problems)} problem{'s' if len(self.problems) != 1 else ''} found"
        return "ok: " + "; ".join(self.checked or ["nothing to check"])


def guarded(diagnosis: Diagnosis, check: str, run: Callable[[], None]) -> None:
    """Run one check; an exception it lets escape becomes one problem instead of a crash."""
    # The doctor reports; it must not crash the CLI or the Dagster definitions that gate on it.
    try:
        run()
    except Exception as error:  # noqa: BLE001 - anything left is a bug, reported as one line
        diagnosis.problem(check, f"the check itself failed ({one_line(error)}); please report it")


def one_line(error: BaseException, limit: int = 200) -> str:
    """`Type: first line of the message`, cut to `limit` characters."""
    text = f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0]}".rstrip(": ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def needed_by(needs: dict[str, dict[str, tuple[str, ...]]], resource: str) -> dict[str, list[str]]:
    """{permission: [processes that need it on `resource`]}."""
    needed: dict[str, list[str]] = defaultdict(list)
    for process, resources in needs.items():
        for permission in resources.get(resource, ()):
            needed[permission].append(process)
    return needed


def who_needs(needed: dict[str, list[str]], missing: list[str]) -> str:
    """`permission (needed by process, ...)` for each missing permission."""
    return ", ".join(f"{permission} (needed by {', '.join(needed[permission])})" for permission in missing)


def not_checkable(diagnosis: Diagnosis, check: str, emulator: bool, resource: str, error: Exception) -> None:
    """testIamPermissions was refused: a note against an emulator, a problem against the real service."""
    # Emulators do not implement testIamPermissions (they have no IAM); real services do, so there a
    # refusal means the check could not be made, which is a problem rather than a pass.
    if emulator:
        diagnosis.note(check, f"permissions not checkable against an emulator ({error})")
    else:
        diagnosis.problem(check, f"testIamPermissions on {resource} failed: {error}; check the credentials")
