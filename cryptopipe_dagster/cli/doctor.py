"""`cryptopipe doctor`: print the diagnosis of the configured environment, one line per finding."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from cryptopipe_dagster.lib.doctor import diagnose
from cryptopipe_dagster.lib.settings import load_settings

EXIT_OK = 0
EXIT_PROBLEMS = 2  # the same code as a refused command: scripts test `!= 0`


def doctor_command(timeout_s: float, console: Console) -> int:
    """Diagnose the environment of the CRYPTOPIPE_* variables; the exit code (0 ok, 2 problems).

    A bad variable raises ConfigError (the caller turns it into one line); everything else the
    environment can get wrong is a problem line here."""
    settings = load_settings()
    diagnosis = diagnose(settings, timeout_s=timeout_s)
    for note in diagnosis.notes:
        console.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)
    for problem in diagnosis.problems:
        console.print(f"[red]problem:[/red] {escape(str(problem))}", highlight=False, soft_wrap=True)
    if diagnosis.ok:
        console.print(f"[green]{escape(diagnosis.summary())}[/green]", highlight=False, soft_wrap=True)
        return EXIT_OK
    console.print(diagnosis.summary(), markup=False, highlight=False, soft_wrap=True)
    return EXIT_PROBLEMS
