"""The one exception type that the command line turns into a one-line error (no traceback)."""


class UserError(Exception):
    """A problem with the user's input (a file, a flag, the environment) that they can fix.

    The message names the file or flag and says what to do; the CLI prints it as
    ``error: <message>`` on stderr and exits non-zero.
    """

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code
