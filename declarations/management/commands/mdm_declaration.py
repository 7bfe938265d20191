"""`mdm_declaration`: Declarative Device Management from the shell.

Declarations (`add FILE.json`, `add-data`, `add-credential`, `list`, `show`, `delete`), sets
(`set create|delete|list|add|remove`), `assign` and `unassign` to devices and groups, and
`status`. The subcommands are declarations/cli.py's table; a refusal is the command's error.
"""

from django.core.management.base import BaseCommand, CommandError, CommandParser

from declarations import cli


class Command(BaseCommand):
    help = (
        "Declarative Device Management: "
        + ", ".join(name for name, *_ in cli.SUBCOMMANDS)
        + " (each with --help)."
    )
    # `add -` and `add-data ID -` read stdin; call_command may hand them another stream.
    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")
        for name, help_text, arguments, _ in cli.SUBCOMMANDS:
            arguments(sub.add_parser(name, help=help_text, description=help_text))

    def handle(self, *args, **options) -> None:
        run = {name: function for name, _, _, function in cli.SUBCOMMANDS}
        try:
            run[options["subcommand"]](self, options)
        except cli.ERRORS as exc:
            raise CommandError(str(exc)) from exc
