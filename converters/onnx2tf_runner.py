"""Run onnx2tf in a child process with the network blocked.

onnx2tf downloads sample images from GitHub unless
``calibration_image_sample_data_20x128x128x3_float32.npy`` is in the working
directory. The converter puts real face crops there, runs this module with that
directory as its working directory, and refuses to let any socket connect: a
conversion that would have reached the network fails instead (exit code 3).
A child process also keeps TensorFlow's memory and log noise out of the caller.

Usage: ``python -m converters.onnx2tf_runner MODEL.onnx OUT_DIR``
"""
from __future__ import annotations

import contextlib
import socket
import sys
from typing import Iterator

NETWORK_EXIT_CODE = 3
CALIBRATION_FILE = "calibration_image_sample_data_20x128x128x3_float32.npy"


class NetworkBlockedError(OSError):
    """Something tried to open a network connection while conversion must stay offline."""


_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1", "", None)


@contextlib.contextmanager
def network_blocked() -> Iterator[list[str]]:
    """Make every outgoing connection and non-local name lookup raise; yield the list of attempts.

    Unix-domain and loopback sockets stay allowed: they are local IPC, not the network.
    """
    attempts: list[str] = []
    saved = (socket.socket.connect, socket.socket.connect_ex, socket.create_connection, socket.getaddrinfo)
    orig_connect, orig_connect_ex, _, orig_getaddrinfo = saved

    def _local(sock: socket.socket, address) -> bool:
        return sock.family == getattr(socket, "AF_UNIX", None) or (
            isinstance(address, tuple) and address[0] in _LOCAL_HOSTS)

    def _refuse(what: str, target) -> None:
        attempts.append(f"{what} {target!r}")
        raise NetworkBlockedError(f"network access blocked during conversion ({what} {target!r})")

    def connect(sock, address):
        return orig_connect(sock, address) if _local(sock, address) else _refuse("connect", address)

    def connect_ex(sock, address):
        return orig_connect_ex(sock, address) if _local(sock, address) else _refuse("connect", address)

    def create_connection(address, *args, **kwargs):
        _refuse("create_connection", address)

    def getaddrinfo(host, *args, **kwargs):
        host_text = host.decode() if isinstance(host, bytes) else host
        return orig_getaddrinfo(host, *args, **kwargs) if host_text in _LOCAL_HOSTS else _refuse("getaddrinfo", host)

    socket.socket.connect, socket.socket.connect_ex = connect, connect_ex
    socket.create_connection, socket.getaddrinfo = create_connection, getaddrinfo
    try:
        yield attempts
    finally:
        socket.socket.connect, socket.socket.connect_ex, socket.create_connection, socket.getaddrinfo = saved


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    onnx_path, out_dir = argv
    with network_blocked() as attempts:
        try:
            import onnx2tf

            onnx2tf.convert(input_onnx_file_path=onnx_path, output_folder_path=out_dir,
                            copy_onnx_input_output_names_to_tflite=True, non_verbose=True,
                            output_signaturedefs=True)  # the INT8 quantizer calibrates through the SignatureDef
        except BaseException:
            if attempts:
                print(f"edgemark: onnx2tf tried to reach the network: {attempts}", file=sys.stderr)
                return NETWORK_EXIT_CODE
            raise
    if attempts:  # an attempt that onnx2tf swallowed still counts as a failure
        print(f"edgemark: onnx2tf tried to reach the network: {attempts}", file=sys.stderr)
        return NETWORK_EXIT_CODE
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
