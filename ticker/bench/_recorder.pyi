def record(
    epoll_fd: int, until_ns: int, read_bytes: int, logs: dict[int, list[object]],
    ended: list[tuple[int, int]], /,
) -> int: ...
