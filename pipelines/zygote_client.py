"""The command Beam's runner starts for each SDK worker when a zygote forks them (worker_zygote.py).

It runs as ``python -I -S zygote_client.py SOCKET``: no site-packages and nothing of curate or Beam is
imported, so it costs a few milliseconds. It passes its environment (the runner's control and logging
addresses, the pipeline options), working folder and standard streams to the zygote, and exits with the
forked worker's status; if the runner kills it, the zygote kills the worker.
"""

import json
import os
import socket
import struct
import sys


# The framing of worker_zygote.HEADER ("!Q": the request's length) and STATUS ("!i": the exit code),
# written out here because this file imports nothing of curate.
def main(socket_path: str) -> int:
    request = json.dumps({"env": dict(os.environ), "cwd": os.getcwd()}).encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.connect(socket_path)
        socket.send_fds(connection, [struct.pack("!Q", len(request))], [0, 1, 2])
        connection.sendall(request)
        status = b""
        while len(status) < 4:
            chunk = connection.recv(4 - len(status))
            if not chunk:
                print("curate: the worker zygote ended before its worker", file=sys.stderr)
                return 1
            status += chunk
    code = struct.unpack("!i", status)[0]
    return 128 - code if code < 0 else code  # a worker ended by signal N: 128 + N, as a shell says


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
