"""Reads Qt binary resource bundles (`.rcc` files): lists their files, returns their bytes.

Some Debian packages (for example the activity data of an educational suite
built with Qt) ship their images inside `.rcc` bundles, which `dpkg -x` leaves
closed. This module reads them without Qt:

    bundle = RccBundle.from_file("activity.rcc")
    for path in bundle.paths:  # e.g. "gcompris/src/activities/x/resource/cat.webp"
      data = bundle.read(path)

Format (Qt's `rcc --binary`, versions 1 to 3), all integers big-endian:
  header: b"qres", version (u32), tree offset (u32), data offset (u32),
          names offset (u32), and from version 3 on a flags word (u32).
  tree:   fixed-size nodes (14 bytes, 22 from version 2 on), node 0 is the root:
          name offset (u32), flags (u16: 1 zlib, 2 directory, 4 zstd), then
          for a directory: child count (u32), index of the first child (u32);
          for a file: country (u16), language (u16), data offset (u32);
          from version 2 on: last modification time (u64, ms).
  names:  length in UTF-16 code units (u16), Qt's hash of the name (u32),
          the name in UTF-16BE.
  data:   length (u32) then the bytes; zlib entries hold qCompress output (the
          uncompressed length as u32, then a zlib stream); zstd entries a zstd
          frame (decoded with the `zstandard` package when it is installed).
Anything that does not follow this raises RccError naming the bundle.
"""

from __future__ import annotations

import dataclasses
import struct
import zlib

_MAGIC = b"qres"
_COMPRESSED_ZLIB = 0x01
_DIRECTORY = 0x02
_COMPRESSED_ZSTD = 0x04


class RccError(ValueError):
  """A malformed or unsupported `.rcc` bundle (the message names it)."""


def qt_hash(name: str) -> int:
  """Qt's `qt_hash` of a name (over UTF-16 code units), as stored in `.rcc` names."""
  h = 0
  units = name.encode("utf-16-be")
  for i in range(0, len(units), 2):
    h = ((h << 4) + int.from_bytes(units[i:i + 2], "big")) & 0xFFFFFFFF
    h ^= (h & 0xF0000000) >> 23
    h &= 0x0FFFFFFF
  return h


@dataclasses.dataclass(frozen=True)
class RccEntry:
  """One file of a bundle: its path, compression ("none", "zlib", "zstd"), locale."""
  path: str
  compression: str
  data_offset: int
  country: int
  language: int


class RccBundle:
  """An `.rcc` bundle held in memory; `paths` lists its files, `read` returns one."""

  def __init__(self, data: bytes, name: str = "<bytes>"):
    self.name = name
    self._data = data
    if len(data) < 20 or data[:4] != _MAGIC:
      raise RccError(f"{name}: not a Qt resource bundle (no 'qres' header)")
    self.version, tree, self._data_offset, self._names_offset = struct.unpack_from(
        ">4I", data, 4)
    if self.version not in (1, 2, 3):
      raise RccError(f"{name}: unsupported rcc format version {self.version}")
    self._tree_offset = tree
    self._node_size = 14 if self.version == 1 else 22
    self.entries: dict[str, RccEntry] = {}
    self._walk(0, "", set())

  @classmethod
  def from_file(cls, path: str) -> RccBundle:
    with open(path, "rb") as f:
      return cls(f.read(), name=path)

  @property
  def paths(self) -> list[str]:
    """The paths of all files in the bundle, sorted ("/"-separated, no leading "/")."""
    return sorted(self.entries)

  def read(self, path: str) -> bytes:
    """The (decompressed) bytes of the file at `path`; RccError if absent or broken."""
    entry = self.entries.get(path)
    if entry is None:
      raise RccError(f"{self.name}: no file {path!r} in the bundle")
    where = self._data_offset + entry.data_offset
    stored = self._slice(where, 4, path)
    payload = self._slice(where + 4, int.from_bytes(stored, "big"), path)
    if entry.compression == "none":
      return payload
    if entry.compression == "zlib":
      if len(payload) < 4:
        raise RccError(f"{self.name}: {path}: zlib entry shorter than its length prefix")
      expected = int.from_bytes(payload[:4], "big")
      try:
        out = zlib.decompress(payload[4:])
      except zlib.error as e:
        raise RccError(f"{self.name}: {path}: corrupt zlib data ({e})") from None
      if len(out) != expected:
        raise RccError(f"{self.name}: {path}: {len(out)} bytes decompressed, header "
                       f"says {expected}")
      return out
    try:
      import zstandard  # pylint: disable=import-outside-toplevel
    except ImportError:
      raise RccError(f"{self.name}: {path} is zstd-compressed; pip install zstandard "
                     "to read it") from None
    try:
      return zstandard.ZstdDecompressor().decompress(payload)
    except zstandard.ZstdError as e:
      raise RccError(f"{self.name}: {path}: corrupt zstd data ({e})") from None

  def _slice(self, start: int, length: int, what: str) -> bytes:
    if start < 0 or start + length > len(self._data):
      raise RccError(f"{self.name}: {what}: bytes {start}..{start + length} lie outside "
                     f"the bundle ({len(self._data)} bytes); truncated or corrupt")
    return self._data[start:start + length]

  def _name(self, offset: int) -> str:
    where = self._names_offset + offset
    length, stored_hash = struct.unpack(">HI", self._slice(where, 6, "name table"))
    try:
      name = self._slice(where + 6, 2 * length, "name table").decode("utf-16-be")
    except UnicodeDecodeError as e:
      raise RccError(f"{self.name}: name at offset {offset} is not UTF-16BE ({e})") from None
    if qt_hash(name) != stored_hash:
      raise RccError(f"{self.name}: name {name!r} has hash {stored_hash:#x}, expected "
                     f"{qt_hash(name):#x}; corrupt name table")
    return name

  def _walk(self, node: int, prefix: str, seen: set[int]) -> None:
    """Adds the files under directory `node` to `entries` (depth first)."""
    if node in seen:  # a malformed tree could otherwise recurse forever
      raise RccError(f"{self.name}: tree node {node} is reached twice; corrupt tree")
    seen.add(node)
    where = self._tree_offset + node * self._node_size
    raw = self._slice(where, 14, f"tree node {node}")
    _, flags, count, first = struct.unpack(">IHII", raw)
    if not flags & _DIRECTORY:
      raise RccError(f"{self.name}: tree node {node} should be a directory")
    for child in range(first, first + count):
      child_where = self._tree_offset + child * self._node_size
      name_offset, child_flags, a, b = struct.unpack(
          ">IHII", self._slice(child_where, 14, f"tree node {child}"))
      path = prefix + self._name(name_offset)
      if child_flags & _DIRECTORY:
        self._walk(child, path + "/", seen)
        continue
      if path in self.entries:
        raise RccError(f"{self.name}: {path} appears twice (locale variants are not "
                       "supported)")
      compression = ("zstd" if child_flags & _COMPRESSED_ZSTD else
                     "zlib" if child_flags & _COMPRESSED_ZLIB else "none")
      self.entries[path] = RccEntry(path=path, compression=compression, data_offset=b,
                                    country=a >> 16, language=a & 0xFFFF)
