class CommandError(Exception):
    """A failure to report to the user in one line, without a traceback.

    Printed as "error: <message>", or as the message alone when raw (kubectl prints
    server errors as "Error from server (Reason): ..." without the prefix).
    """

    def __init__(self, message: str, raw: bool = False) -> None:
        super().__init__(message)
        self.raw = raw

    def line(self) -> str:
        return str(self) if self.raw else f"error: {self}"
