from collections.abc import Mapping

def take_frames(
    cursors: Mapping[str, object], max_lag: int, step: int, prefix: bytes, suffix: bytes,
    ws_header: bool, /,
) -> tuple[list[bytes], int, bytes | None] | None: ...

def send_frames(
    cursors: Mapping[str, object], max_lag: int, step: int, prefix: bytes, suffix: bytes,
    fd: int, /,
) -> tuple[int, bytes | None, int, int, bytes | None] | None: ...
