class UserError(ValueError):
    """Bad input: the CLI reports it as one line and exits non-zero, no traceback."""


class MalformedModel(UserError):
    """A model file whose bytes break its format (protobuf, flatbuffers): the message is the
    short reason, which `check_ops` puts after the file's name."""


def one_line(text: str, limit: int = 300) -> str:
    """Text from an untrusted file as it may appear in a message: one line of at most about
    `limit` characters (the middle cut out), unprintable characters escaped."""
    shown = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in _middle_cut(text, limit))
    return _middle_cut(shown, limit)


def _middle_cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit // 2]}...{text[-(limit // 2):]}"
