"""Read the named metadata entries of a ``.tflite`` file without TensorFlow or the flatbuffers package.

A TFLite file is a flatbuffer whose root ``Model`` table has (schema.fbs field ids)
``buffers: [Buffer]`` (id 4) and ``metadata: [Metadata]`` (id 6); a ``Metadata`` is
``{name: string (0), buffer: uint (1)}`` and a ``Buffer`` is ``{data: [ubyte] (0),
offset: ulong (1), size: ulong (2)}`` (offset/size are used by files over 2 GB, with the
data stored after the flatbuffer, counted from the start of the file). Only these few
fields are read, every offset bounds-checked, so a damaged file gives a clear error
instead of garbage.
"""
from __future__ import annotations

import struct

FILE_IDENTIFIER = b"TFL3"
_MODEL_BUFFERS, _MODEL_METADATA = 4, 6
_META_NAME, _META_BUFFER = 0, 1
_BUF_DATA, _BUF_OFFSET, _BUF_SIZE = 0, 1, 2


class FlatbufferError(ValueError):
    """The bytes are not a well-formed TFLite flatbuffer (truncated, corrupt or another format)."""


class _Reader:
    def __init__(self, data: bytes):
        self.data = memoryview(data)

    def _unpack(self, fmt: str, pos: int) -> int:
        size = struct.calcsize(fmt)
        if pos < 0 or pos + size > len(self.data):
            raise FlatbufferError(f"offset {pos} lies outside the {len(self.data)}-byte file")
        return struct.unpack_from(fmt, self.data, pos)[0]

    def u16(self, pos: int) -> int:
        return self._unpack("<H", pos)

    def u32(self, pos: int) -> int:
        return self._unpack("<I", pos)

    def i32(self, pos: int) -> int:
        return self._unpack("<i", pos)

    def u64(self, pos: int) -> int:
        return self._unpack("<Q", pos)

    def field(self, table: int, index: int) -> int | None:
        """Absolute position of field ``index`` of the table at ``table``, or None when absent."""
        vtable = table - self.i32(table)
        vt_size = self.u16(vtable)
        slot = 4 + 2 * index
        if slot + 2 > vt_size:
            return None
        rel = self.u16(vtable + slot)
        return table + rel if rel else None

    def indirect(self, pos: int) -> int:
        return pos + self.u32(pos)

    def vector(self, pos: int) -> tuple[int, int]:
        """(start of elements, element count) of the vector referenced at ``pos``."""
        vec = self.indirect(pos)
        n = self.u32(vec)
        if vec + 4 + n > len(self.data):  # elements take at least one byte each
            raise FlatbufferError(f"vector of {n} elements at {vec} runs past the end of the file")
        return vec + 4, n

    def table_vector(self, table: int, index: int) -> list[int]:
        pos = self.field(table, index)
        if pos is None:
            return []
        start, n = self.vector(pos)
        return [self.indirect(start + 4 * i) for i in range(n)]

    def string(self, pos: int) -> bytes:
        start, n = self.vector(pos)
        if start + n > len(self.data):
            raise FlatbufferError("string runs past the end of the file")
        return bytes(self.data[start:start + n])


def read_metadata_entries(data: bytes) -> dict[str, bytes]:
    """All ``Model.metadata`` entries of a TFLite file: name → the bytes of the buffer it points at."""
    if len(data) < 8 or bytes(data[4:8]) != FILE_IDENTIFIER:
        raise FlatbufferError("not a TFLite model (file identifier 'TFL3' missing)")
    r = _Reader(data)
    try:
        model = r.indirect(0)
        buffers = r.table_vector(model, _MODEL_BUFFERS)
        entries: dict[str, bytes] = {}
        for meta in r.table_vector(model, _MODEL_METADATA):
            name_pos = r.field(meta, _META_NAME)
            buf_pos = r.field(meta, _META_BUFFER)
            if name_pos is None or buf_pos is None:
                continue
            index = r.u32(buf_pos)
            if index >= len(buffers):
                raise FlatbufferError(f"metadata entry points at buffer {index} of {len(buffers)}")
            entries[r.string(name_pos).decode("utf-8", "replace")] = _buffer_bytes(r, buffers[index])
        return entries
    except struct.error as exc:  # pragma: no cover - _unpack bounds-checks first
        raise FlatbufferError(str(exc)) from None


def _buffer_bytes(r: _Reader, buffer: int) -> bytes:
    data_pos = r.field(buffer, _BUF_DATA)
    if data_pos is not None:
        start, n = r.vector(data_pos)
        if start + n > len(r.data):
            raise FlatbufferError("buffer data runs past the end of the file")
        return bytes(r.data[start:start + n])
    off_pos, size_pos = r.field(buffer, _BUF_OFFSET), r.field(buffer, _BUF_SIZE)
    if off_pos is None or size_pos is None:
        return b""
    offset, size = r.u64(off_pos), r.u64(size_pos)
    if offset + size > len(r.data):
        raise FlatbufferError("buffer stored after the flatbuffer runs past the end of the file")
    return bytes(r.data[offset:offset + size])
