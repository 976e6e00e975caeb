"""How many connections this process can really hold: each is a file descriptor.

``server.max_connections`` is what the operator wants; the kernel's per-process limit on open
files (RLIMIT_NOFILE) is what the process may have. Past that limit ``accept()`` fails with
EMFILE: the client waits in the listen backlog and gets no answer at all, instead of the HTTP 503
that says "full, retry elsewhere". So at start the soft limit is raised as far as the hard limit
allows, and the cap is lowered to what fits, with a warning naming the limit to raise.
"""

from __future__ import annotations

import logging
import resource

log = logging.getLogger("ticker.limits")

# Descriptors the process needs besides its clients: the listening socket, the event loop's,
# logs, a recording, the Redis connection, the pages' files while served.
RESERVED_FILES = 64


def connections_that_fit(wanted: int, soft: int, hard: int) -> tuple[int, int]:
    """(the open-files soft limit to set, the connections that fit under it)."""
    needed = wanted + RESERVED_FILES
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    soft = max(soft, target) if soft != resource.RLIM_INFINITY else soft
    room = wanted if soft == resource.RLIM_INFINITY else max(1, min(wanted, soft - RESERVED_FILES))
    return soft, room


def raise_open_files(connections: int) -> tuple[int, int]:
    """Raise this process's open-files soft limit for ``connections`` sockets, as far as the hard
    limit allows; returns (the soft limit now, the connections that fit under it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    new_soft, room = connections_that_fit(connections, soft, hard)
    if new_soft != soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, hard))
    return new_soft, room


def fit_max_connections(wanted: int) -> int:
    """Raise this process's open-files limit for ``wanted`` connections; returns how many it can
    hold (``wanted``, or fewer when the hard limit is lower, with a warning)."""
    new_soft, room = raise_open_files(wanted)
    if room < wanted:
        log.warning("server.max_connections is %d, but this process may open only %d files "
                    "(RLIMIT_NOFILE hard limit): it holds %d connections and refuses the next "
                    "with 503. Raise the limit (ulimit -n, systemd LimitNOFILE=) to hold more",
                    wanted, new_soft, room)
    return room
