"""A correct target that prints at import, including a line shaped like a kit message."""

print('{"msg": "hello", "protocol": 1, "specs": []}')

from tests.zoo.process import chatty as spec  # noqa: E402,F401
